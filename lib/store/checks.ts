// Argument and state checks shared by every store kind's public methods (validate at the edge).
import * as fs from '../fs.js'
import { fromSystemError, PagecowError } from '../errors.js'
import { MAX_FILE_SIZE } from '../geometry.js'

export function closedError(): PagecowError {
  return new PagecowError('ECLOSED', 'the store is closed')
}

/** Offsets and lengths are non-negative integers whose sum stays within MAX_FILE_SIZE. */
export function checkRange(offset: number, length: number, what: string): void {
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new PagecowError('EINVAL', `${what}: offset must be a non-negative integer, got ${String(offset)}`)
  }
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new PagecowError('EINVAL', `${what}: length must be a non-negative integer, got ${String(length)}`)
  }
  if (offset + length > MAX_FILE_SIZE) {
    throw new PagecowError('EFBIG', `${what}: offset + length ${offset + length} is past the ${MAX_FILE_SIZE}-byte limit`)
  }
}

/** Make `path` an empty directory for a new store; returns whether it was created here. */
export function prepareEmptyDirectory(path: string): boolean {
  try {
    const existed = fs.existsSync(path)
    fs.mkdirSync(path, { recursive: true })
    if (fs.readdirSync(path).length > 0) {
      throw new PagecowError('EEXIST', `${path} is not empty; a store is created in a new or empty directory`)
    }
    return !existed
  } catch (err) {
    throw fromSystemError(err, `creating the store directory ${path}`)
  }
}
