// Sizes and offsets on the command line: plain bytes or a binary suffix (4k, 16M, 1G, 2T, 4KiB).
import { PagecowError } from '../errors.js'

/** Multipliers by lower-cased suffix; every suffix is binary (k = KiB = 1024). */
const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 2 ** 10,
  kib: 2 ** 10,
  m: 2 ** 20,
  mib: 2 ** 20,
  g: 2 ** 30,
  gib: 2 ** 30,
  t: 2 ** 40,
  tib: 2 ** 40,
  p: 2 ** 50,
  pib: 2 ** 50,
}

const FORMS = 'use whole bytes or a binary suffix: 4096, 4k, 16M, 1G, 2T, 4KiB'

/**
 * Parse `text` as a non-negative whole number of bytes. Suffixes are case-insensitive and binary.
 * Throws EINVAL for negatives, fractions, unknown suffixes and values past 2^53 - 1.
 */
export function parseSize(text: string): number {
  const trimmed = text.trim()
  if (trimmed.startsWith('-')) throw new PagecowError('EINVAL', `"${text}" is negative; ${FORMS}`)
  const match = /^(\d+)(\.\d+)?\s*([a-z]*)$/i.exec(trimmed)
  if (!match) throw new PagecowError('EINVAL', `"${text}" is not a size; ${FORMS}`)
  const [, digits = '', fraction, suffix = ''] = match
  const unit = UNITS[suffix.toLowerCase()]
  if (unit === undefined) throw new PagecowError('EINVAL', `"${text}" has an unknown suffix "${suffix}"; ${FORMS}`)
  if (fraction !== undefined) throw new PagecowError('EINVAL', `"${text}" is not a whole number of bytes; ${FORMS}`)
  const value = Number(digits) * unit
  if (!Number.isSafeInteger(value)) throw new PagecowError('EINVAL', `"${text}" is too large (the limit is ${Number.MAX_SAFE_INTEGER} bytes)`)
  return value
}
