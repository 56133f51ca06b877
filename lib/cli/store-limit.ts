// The largest offset a store holds (MAX_FILE_SIZE, 4 PiB), checked on the command line so that a
// range past it is told in flags (`--offset + --length`), not in the library's argument names.
import { PagecowError } from '../errors.js'
import { MAX_FILE_SIZE } from '../geometry.js'
import { formatSize } from './format-size.js'

/** EFBIG when the values of `parts` (flag, bytes) add up past what a store holds. */
export function checkStoreLimit(command: string, parts: ReadonlyArray<readonly [flag: string, bytes: number | undefined]>): void {
  const given = parts.filter((p): p is readonly [string, number] => p[1] !== undefined)
  const end = given.reduce((sum, [, bytes]) => sum + bytes, 0)
  if (end <= MAX_FILE_SIZE) return
  const what = given.map(([flag]) => flag).join(' + ')
  throw new PagecowError('EFBIG', `${command}: ${what} ${given.length > 1 ? 'reach' : 'is'} ${end} bytes (${formatSize(end)}), past the ${formatSize(MAX_FILE_SIZE)} a store can hold`)
}
