// Writing the merged tree out as a plain directory: sparse files stay sparse; names (bytes, UTF-8
// or not), owners, modes, times (to the nanosecond), xattrs, hard links, symlinks and special
// files are kept. Uses the public API only; output paths are name-form strings (name-bytes.ts).
// The root records where the tree stands in its backup chain (user.pagecow.position), for
// `pagecow apply` of a tree incremental.
import { basename, dirname, resolve } from 'node:path'
import { z } from 'zod'
import * as fs from '../fs.js'
import { fromSystemError, parseWith, PagecowError } from '../errors.js'
import { checkAborted, discardTemporary, publishDirectory, temporaryBeside } from '../image/temp-output.js'
import { fsPath } from '../name-bytes.js'
import { splitNs } from '../time-ns.js'
import { storeIdentity } from '../incremental/store-identity.js'
import { writePosition, type TargetPosition } from '../incremental/target-position.js'
import { isEmptyDelta } from './namespace-delta.js'
import { childPath } from './names.js'
import type { TreeStat } from './tree-stat.js'
import type { TreeStore } from './tree-store.js'

const BLOCK = 1024 * 1024

export interface ExportTreeProgress {
  /** Objects written so far, and the last one's path in the tree. */
  entries: number
  bytes: number
  path: string
}

export interface ExportTreeResult {
  entries: number
  /** Bytes of file data written (holes, ZERO pages and all-zero blocks are left as holes). */
  bytesCopied: number
  /** Objects or attributes that could not be reproduced (sockets; owners without privilege). */
  skipped: Array<{ path: string; reason: string }>
}

const exportTreeOptionsSchema = z.strictObject({
  /** Called after each object written. */
  onProgress: z.custom<(progress: ExportTreeProgress) => void>((v) => typeof v === 'function').optional(),
  /** Set owners (lchown); failures without privilege are listed in `skipped`. Default true. */
  owners: z.boolean().default(true),
  /** Stop the export (EINTR, nothing kept at the output) when this is aborted. */
  signal: z.custom<AbortSignal>((v) => v instanceof AbortSignal, 'signal must be an AbortSignal').optional(),
})

export type ExportTreeOptions = z.input<typeof exportTreeOptionsSchema>

/**
 * Write the merged tree of `store` into `outdir` (new or empty). Directories get their mode,
 * owner and times after their content, so a read-only directory is still filled. Never half done:
 * the tree is written into a temporary directory beside `outdir` and renamed into place when
 * complete; on failure or abort the temporary is removed and `outdir` is as it was.
 */
export async function exportTree(store: TreeStore, outdir: string, options: ExportTreeOptions = {}): Promise<ExportTreeResult> {
  const opts = parseWith(exportTreeOptionsSchema, options, 'export')
  checkTreeOutput(store, outdir)
  let existing: string[] | undefined
  try {
    fs.mkdirSync(dirname(resolve(outdir)), { recursive: true })
    existing = fs.readdirSync(outdir)
  } catch (err) {
    const e = fromSystemError(err, `reading ${outdir}`)
    if (e.code !== 'ENOENT') throw e.code === 'ENOTDIR' ? new PagecowError('EEXIST', `${outdir} exists and is not a directory; export into a new or empty directory`, { cause: err }) : e
  }
  if (existing && existing.length > 0) throw new PagecowError('EEXIST', `${outdir} is not empty; export into a new or empty directory`)
  checkAborted(opts.signal, outdir)
  const temp = temporaryBeside(outdir)
  try {
    fs.mkdirSync(temp, { mode: 0o700 })
  } catch (err) {
    throw fromSystemError(err, `creating ${outdir}`)
  }
  try {
    // The walk awaits onProgress after each object: the place to stop it. The walk itself never
    // leaves the event loop's microtasks, so a signal's handler (which aborts) could not run
    // until the end: give the loop a turn every few objects.
    const onProgress = async (p: ExportTreeProgress) => {
      if (opts.signal && p.entries % 32 === 0) await new Promise((resolve) => setImmediate(resolve))
      checkAborted(opts.signal, outdir)
      opts.onProgress?.(p)
    }
    // The newest mark when the export began: the tree is at or after it, which is where a tree
    // incremental since that mark applies (recorded on the root for `apply`).
    // Whether the tree is exactly at that mark (nothing changed since) is recorded too: a tree
    // incremental since the mark only applies to a tree exactly at it.
    const at = store.marks().at(-1)
    const beyond = at !== undefined && !isEmptyDelta(store.namespaceDelta(at.name))
    const result = await writeTree(store, temp, { ...opts, onProgress })
    recordPosition(temp, { store: storeIdentity(store.info()), at: at === undefined ? null : { name: at.name, epoch: at.epoch, created: at.created }, ...(beyond ? { beyond: true as const } : {}) })
    checkAborted(opts.signal, outdir)
    publishDirectory(temp, outdir)
    return result
  } catch (err) {
    discardTemporary(temp)
    throw fromSystemError(err, `exporting to ${outdir}`)
  }
}

function recordPosition(dir: string, position: TargetPosition): void {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY)
  try {
    if (writePosition(fd, position)) fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}

/** The export itself, into the new directory `outdir`. */
async function writeTree(store: TreeStore, outdir: string, opts: z.output<typeof exportTreeOptionsSchema>): Promise<ExportTreeResult> {
  const result: ExportTreeResult = { entries: 0, bytesCopied: 0, skipped: [] }
  const links = new Map<number, string>()
  let ownersDenied = false

  const finishObject = async (path: string, out: string, st: TreeStat) => {
    if (st.type !== 'symlink') await copyXattrs(store, path, out, st, result)
    if (opts.owners && !ownersDenied) {
      try {
        fs.lchownSync(fsPath(out), st.uid, st.gid)
      } catch (err) {
        const code = (err as { code?: string }).code
        if (code !== 'EPERM') throw fromSystemError(err, `setting the owner of ${out}`)
        ownersDenied = true
        result.skipped.push({ path, reason: 'owners not set: changing owners needs privilege (the first refusal stops further attempts)' })
      }
    }
    if (st.type !== 'symlink') fs.chmodSync(fsPath(out), st.mode & 0o7777)
    fs.lutimensSync(fsPath(out), splitNs(st.atimeNs), splitNs(st.mtimeNs))
  }

  const walk = async (dir: string, outDir: string): Promise<void> => {
    let after: string | undefined
    for (;;) {
      const batch = await store.readdir(dir, after === undefined ? { limit: 1024 } : { after, limit: 1024 })
      if (batch.length === 0) break
      after = batch[batch.length - 1]!.name
      for (const entry of batch) {
        const path = childPath(dir, entry.name)
        const out = `${outDir}/${entry.name}`
        const st = await store.stat(path)
        if (st.type === 'directory') {
          fs.mkdirSync(fsPath(out), { mode: 0o700 })
          await walk(path, out)
          await finishObject(path, out, st)
        } else if (st.nlink > 1 && links.has(st.ino)) {
          fs.linkSync(fsPath(links.get(st.ino)!), fsPath(out))
        } else {
          if (st.type === 'socket') {
            result.skipped.push({ path, reason: 'sockets cannot be created by an export (the listening process makes them)' })
            continue
          }
          if (st.type === 'file') await copyData(store, path, out, st, result)
          else if (st.type === 'symlink') fs.symlinkSync(fsPath(await store.readlink(path)), fsPath(out))
          else fs.mknod(fsPath(out), st.type === 'fifo' ? 'fifo' : st.type === 'char-device' ? 'char' : 'block', 0o600, st.rdev)
          await finishObject(path, out, st)
          if (st.nlink > 1) links.set(st.ino, out)
        }
        result.entries++
        await opts.onProgress?.({ entries: result.entries, bytes: result.bytesCopied, path })
      }
    }
  }

  try {
    await walk('/', outdir)
    await finishObject('/', outdir, await store.stat('/'))
  } catch (err) {
    throw fromSystemError(err, `exporting to ${outdir}`)
  }
  return result
}

/**
 * Refuse (EINVAL) an output path inside the lower (it is never written) or the store (nothing
 * else lives there), or containing either. For exports and `pagecow read --output`.
 */
export function checkTreeOutput(store: Pick<TreeStore, 'path' | 'lowerPaths'>, outdir: string): void {
  const target = realpathOfNearest(resolve(outdir))
  for (const [root, what] of [...store.lowerPaths.map((l) => [l, 'the lower'] as const), [store.path, 'the store'] as const]) {
    const real = realpathOfNearest(root)
    if (target === real || target.startsWith(real + '/') || real.startsWith(target + '/')) {
      throw new PagecowError('EINVAL', `export: ${outdir} and ${what} (${root}) overlap; export somewhere else`)
    }
  }
}

/** The real path of `path`, resolving its nearest existing ancestor (the rest may not exist yet). */
function realpathOfNearest(path: string): string {
  const rest: string[] = []
  for (let p = path; ; p = dirname(p)) {
    try {
      return [fs.realpathSync(p), ...rest].join('/').replace(/\/\/+/g, '/')
    } catch {
      if (dirname(p) === p) return path
      rest.unshift(basename(p))
    }
  }
}

/** Copy a regular file's data: only its data and lower extents, leaving holes and zero blocks out. */
async function copyData(store: TreeStore, path: string, out: string, st: TreeStat, result: ExportTreeResult): Promise<void> {
  const fd = fs.openSync(fsPath(out), fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600)
  const handle = await store.open(path, 'r')
  try {
    fs.ftruncateSync(fd, st.size)
    const zeros = Buffer.alloc(BLOCK)
    for (const extent of store.extents(path)) {
      if (extent.state === 'hole' || extent.state === 'zero') continue
      const end = extent.start + extent.length
      for (let pos = extent.start; pos < end; pos += BLOCK) {
        const chunk = await handle.read(pos, Math.min(BLOCK, end - pos))
        if (chunk.equals(zeros.subarray(0, chunk.length))) continue
        for (let done = 0; done < chunk.length; ) done += fs.writeSync(fd, chunk, done, chunk.length - done, pos + done)
        result.bytesCopied += chunk.length
      }
    }
    fs.fsyncSync(fd)
  } finally {
    await handle.close()
    fs.closeSync(fd)
  }
}

async function copyXattrs(store: TreeStore, path: string, out: string, st: TreeStat, result: ExportTreeResult): Promise<void> {
  const names = await store.listxattr(path)
  if (names.length === 0) return
  if (st.type === 'char-device' || st.type === 'block-device') {
    result.skipped.push({ path, reason: 'extended attributes of device nodes are not exported' })
    return
  }
  const flags = fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW
  const fd = fs.openSync(fsPath(out), flags)
  try {
    for (const name of names) fs.setXattr(fd, name, await store.getxattr(path, name))
  } finally {
    fs.closeSync(fd)
  }
}
