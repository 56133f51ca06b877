// What overlayfs writes into a layer to change the layers below it, read as the kernel reads it
// in a lower (Documentation/filesystems/overlayfs.rst): a whiteout hides a name below, an opaque
// directory hides the directories below it. Only a stack of lowers (lower-stack.ts) honours them;
// the attributes themselves are the stack's, never shown as the objects' own.
import type { LowerObject, LowerTree } from './lower-tree.js'

/** The prefix of overlayfs's own attributes (trusted.overlay.*), hidden from the merged tree. */
export const OVERLAY_XATTR_PREFIX = 'trusted.overlay.'
const OPAQUE = 'trusted.overlay.opaque'
const WHITEOUT = 'trusted.overlay.whiteout'

/** What a lower directory's trusted.overlay.opaque says. */
export interface DirMarks {
  /** "y": the directories of the same name below do not merge into it. */
  opaque: boolean
  /** "x": its entries may be whiteouts of the attribute form (checked only in such a directory). */
  xattrWhiteouts: boolean
}

export function dirMarks(layer: LowerTree, dir: LowerObject): DirMarks {
  const value = layer.xattrs(dir.path, 'directory').get(OPAQUE)?.toString('latin1')
  return { opaque: value === 'y', xattrWhiteouts: value === 'x' }
}

/**
 * Whether a layer's object is a whiteout: a character device 0/0, or (in a directory marked
 * xattrWhiteouts, as the kernel asks) an empty regular file with trusted.overlay.whiteout.
 */
export function isWhiteout(layer: LowerTree, object: LowerObject, xattrWhiteouts: boolean): boolean {
  if (object.type === 'char-device') return object.stat.rdev === 0
  return xattrWhiteouts && object.type === 'file' && object.stat.size === 0 && layer.xattrs(object.path, 'file').has(WHITEOUT)
}

/** A layer's attributes without overlayfs's own. */
export function withoutOverlayXattrs(xattrs: Map<string, Buffer>): Map<string, Buffer> {
  for (const name of xattrs.keys()) if (name.startsWith(OVERLAY_XATTR_PREFIX)) xattrs.delete(name)
  return xattrs
}
