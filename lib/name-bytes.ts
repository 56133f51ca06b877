// File names are bytes (SPEC §6): any byte string without "/" and NUL, UTF-8 or not. Inside
// pagecow, and in its API, a name is a JavaScript string in the form Python gives file names
// (PEP 383, "surrogateescape"): bytes that are valid UTF-8 are their characters, and each byte of
// an invalid sequence is the lone surrogate U+DC80 + (byte − 0x80), a code unit no valid UTF-8
// decodes to. So the common (UTF-8) name costs nothing, and every name converts both ways exactly.
import { isUtf8 } from 'node:buffer'

const ESCAPE_BASE = 0xdc00
const FIRST_ESCAPE = 0xdc80
const LAST_ESCAPE = 0xdcff

/** The name of the bytes `bytes`: their UTF-8 characters, invalid bytes escaped. */
export function nameFromBytes(bytes: Uint8Array): string {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length)
  if (isUtf8(buf)) return buf.toString('utf8')
  let out = ''
  let i = 0
  while (i < buf.length) {
    const n = validSequenceAt(buf, i)
    if (n > 0) {
      out += buf.toString('utf8', i, i + n)
      i += n
    } else {
      out += String.fromCharCode(ESCAPE_BASE + buf[i]!)
      i++
    }
  }
  return out
}

/**
 * The bytes of name `name`. Throws a RangeError for a string that is no name's form: a lone
 * surrogate other than an escape (U+DC80..U+DCFF), or escapes of bytes that together are valid
 * UTF-8 (the name of those bytes is their characters; two strings never name the same bytes).
 */
export function nameToBytes(name: string): Buffer {
  if (name.isWellFormed()) return Buffer.from(name, 'utf8')
  const bytes = escapedToBytes(name)
  if (nameFromBytes(bytes) !== name) throw new RangeError('escaped bytes that form valid UTF-8 must be written as their characters')
  return bytes
}

/** Whether `name` is in the form nameFromBytes() gives (so nameToBytes() accepts it). */
export function isNameForm(name: string): boolean {
  if (name.isWellFormed()) return true
  try {
    nameToBytes(name)
    return true
  } catch {
    return false
  }
}

/** Bytes `name` takes (the length NAME_MAX and PATH_MAX limit). */
export function byteLength(name: string): number {
  return name.isWellFormed() ? Buffer.byteLength(name, 'utf8') : escapedToBytes(name).length
}

/** What to hand node:fs for path `path`: the string itself, or its bytes when it escapes some. */
export function fsPath(path: string): string | Buffer {
  return path.isWellFormed() ? path : nameToBytes(path)
}

/** Byte order of two names (the order SQLite and the kernel's ext4 htree-free listings agree on). */
export function compareNameBytes(a: string, b: string): number {
  if (a === b) return 0
  // Fast path: both ASCII compare the same as strings and as bytes.
  if (isAscii(a) && isAscii(b)) return a < b ? -1 : 1
  return Buffer.compare(nameToBytes(a), nameToBytes(b))
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false
  return true
}

function escapedToBytes(name: string): Buffer {
  const parts: Buffer[] = []
  let start = 0
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i)
    if (c < 0xd800 || c > 0xdfff) continue
    if (c <= 0xdbff) {
      const next = name.charCodeAt(i + 1)
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++ // a pair: an ordinary character
        continue
      }
      throw new RangeError(`U+${c.toString(16).toUpperCase()} alone is not a character and escapes no byte`)
    }
    if (c < FIRST_ESCAPE || c > LAST_ESCAPE) throw new RangeError(`U+${c.toString(16).toUpperCase()} alone is not a character and escapes no byte`)
    if (i > start) parts.push(Buffer.from(name.slice(start, i), 'utf8'))
    parts.push(Buffer.of(c - ESCAPE_BASE))
    start = i + 1
  }
  if (start < name.length) parts.push(Buffer.from(name.slice(start), 'utf8'))
  return Buffer.concat(parts)
}

/** Length of the valid UTF-8 sequence at `i` (shortest form, no surrogates, ≤ U+10FFFF), or 0. */
function validSequenceAt(b: Buffer, i: number): number {
  const c = b[i]!
  if (c < 0x80) return 1
  const cont = (k: number) => i + k < b.length && (b[i + k]! & 0xc0) === 0x80
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0
  if (c >= 0xe0 && c <= 0xef) {
    if (!cont(1) || !cont(2)) return 0
    const c1 = b[i + 1]!
    if (c === 0xe0 && c1 < 0xa0) return 0 // overlong
    if (c === 0xed && c1 >= 0xa0) return 0 // a surrogate
    return 3
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0
    const c1 = b[i + 1]!
    if (c === 0xf0 && c1 < 0x90) return 0 // overlong
    if (c === 0xf4 && c1 >= 0x90) return 0 // past U+10FFFF
    return 4
  }
  return 0
}
