// Names and paths of the merged tree, validated at the edge (SPEC §6): nothing a caller passes
// can name something outside the tree. Names are bytes (name-bytes.ts): a path is a string in
// name form or the bytes themselves (a Buffer, as node:fs accepts).
import { PagecowError } from '../errors.js'
import { byteLength, compareNameBytes, isNameForm, nameFromBytes } from '../name-bytes.js'

/** Longest name of one directory entry, in bytes (NAME_MAX). */
export const NAME_MAX = 255
/** Longest path, in bytes (PATH_MAX). */
export const PATH_MAX = 4096

/** A path of the merged tree as callers give it: a string (name form), or its bytes. */
export type TreePath = string | Uint8Array

const SLASH = 0x2f

/**
 * Check one directory entry name: not empty, not `.` or `..`, no `/` and no NUL, at most
 * NAME_MAX bytes, and in name form (any bytes, those that are not UTF-8 escaped as name-bytes.ts
 * says). EINVAL, or ENAMETOOLONG for a long one.
 */
export function checkName(name: unknown, what: string): string {
  if (typeof name !== 'string') throw new PagecowError('EINVAL', `${what}: a name must be a string`)
  if (name === '' || name === '.' || name === '..') throw new PagecowError('EINVAL', `${what}: "${name}" is not a valid name`)
  if (name.includes('/')) throw new PagecowError('EINVAL', `${what}: a name cannot contain "/"`)
  if (name.includes('\0')) throw new PagecowError('EINVAL', `${what}: a name cannot contain a NUL byte`)
  if (!isNameForm(name)) {
    throw new PagecowError('EINVAL', `${what}: the name holds a lone surrogate that escapes no byte (pass the name's bytes as a Buffer)`)
  }
  const bytes = byteLength(name)
  if (bytes > NAME_MAX) throw new PagecowError('ENAMETOOLONG', `${what}: the name is ${bytes} bytes; at most ${NAME_MAX} are allowed`)
  return name
}

/**
 * Split a path of the merged tree into checked names. A leading `/` is optional and empty
 * components (`a//b`, a trailing `/`) are ignored; `.` and `..` are refused: the tree is walked
 * downwards only. `''` and `/` are the root (no names).
 */
export function splitPath(path: unknown, what: string): string[] {
  let names: string[]
  if (typeof path === 'string') {
    if (path.length > PATH_MAX) throw tooLong(what) // every UTF-16 unit is at least a byte
    names = path.split('/').filter((n) => n !== '')
  } else if (path instanceof Uint8Array) {
    if (path.length > PATH_MAX) throw tooLong(what)
    names = []
    for (let start = 0; start <= path.length; ) {
      let end = path.indexOf(SLASH, start)
      if (end < 0) end = path.length
      if (end > start) names.push(nameFromBytes(path.subarray(start, end)))
      start = end + 1
    }
  } else {
    throw new PagecowError('EINVAL', `${what}: a path must be a string or a Buffer`)
  }
  for (const name of names) checkName(name, `${what} ${JSON.stringify(joinPath(names))}`)
  if (typeof path === 'string' && byteLength(path) > PATH_MAX) throw tooLong(what) // once every name is known to be in name form
  return names
}

function tooLong(what: string): PagecowError {
  return new PagecowError('ENAMETOOLONG', `${what}: the path is over ${PATH_MAX} bytes`)
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
  return compareNameBytes(a, b)
}
