// Names and paths of the merged tree, validated at the edge (SPEC §6): nothing a caller passes
// can name something outside the tree.
import { PagecowError } from '../errors.js'

/** Longest name of one directory entry, in bytes (NAME_MAX). */
export const NAME_MAX = 255
/** Longest path, in bytes (PATH_MAX). */
export const PATH_MAX = 4096

/**
 * Check one directory entry name: not empty, not `.` or `..`, no `/` and no NUL, at most
 * NAME_MAX bytes of UTF-8. EINVAL, or ENAMETOOLONG for a long one.
 */
export function checkName(name: unknown, what: string): string {
  if (typeof name !== 'string') throw new PagecowError('EINVAL', `${what}: a name must be a string`)
  if (name === '' || name === '.' || name === '..') throw new PagecowError('EINVAL', `${what}: "${name}" is not a valid name`)
  if (name.includes('/')) throw new PagecowError('EINVAL', `${what}: a name cannot contain "/"`)
  if (name.includes('\0')) throw new PagecowError('EINVAL', `${what}: a name cannot contain a NUL byte`)
  if (Buffer.from(name, 'utf8').toString('utf8') !== name) {
    throw new PagecowError('EINVAL', `${what}: a name must be valid Unicode`)
  }
  if (Buffer.byteLength(name) > NAME_MAX) {
    throw new PagecowError('ENAMETOOLONG', `${what}: the name is ${Buffer.byteLength(name)} bytes; at most ${NAME_MAX} are allowed`)
  }
  return name
}

/**
 * Split a path of the merged tree into checked names. A leading `/` is optional and empty
 * components (`a//b`, a trailing `/`) are ignored; `.` and `..` are refused: the tree is walked
 * downwards only. `''` and `/` are the root (no names).
 */
export function splitPath(path: unknown, what: string): string[] {
  if (typeof path !== 'string') throw new PagecowError('EINVAL', `${what}: a path must be a string`)
  if (Buffer.byteLength(path) > PATH_MAX) {
    throw new PagecowError('ENAMETOOLONG', `${what}: the path is over ${PATH_MAX} bytes`)
  }
  const names = path.split('/').filter((n) => n !== '')
  for (const name of names) checkName(name, `${what} ${JSON.stringify(path)}`)
  return names
}

/** The path made of `names`, with a leading `/`. */
export function joinPath(names: readonly string[]): string {
  return '/' + names.join('/')
}

/** The path of `name` inside `dir` (both as printed: leading `/`). */
export function childPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`
}

/** Byte order of two names (SQLite's and the kernel's), not UTF-16 order. */
export function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b))
}
