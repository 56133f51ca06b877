// fallocate(2) on a mount: only the modes that make a range read as zeros can be honoured
// (punch-hole, zero-range). Plain allocation would promise space the upper never reserves, so it
// is refused and callers (posix_fallocate, qemu) fall back to writing.
import { PagecowError } from '../errors.js'

const FALLOC_FL_KEEP_SIZE = 0x01
const FALLOC_FL_PUNCH_HOLE = 0x02
const FALLOC_FL_ZERO_RANGE = 0x10

/**
 * The range a fallocate of `mode` over [offset, offset + length) of a file of `size` bytes must
 * zero (whole pages of it become ZERO and give their space back), or null when there is nothing
 * to do. With KEEP_SIZE the part past the end is left alone; without it the file grows.
 */
export function fallocateZeroRange(mode: number, offset: number, length: number, size: number): { offset: number; length: number } | null {
  const zeroing = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE
  if (mode & ~(FALLOC_FL_KEEP_SIZE | zeroing) || !(mode & zeroing)) {
    throw new PagecowError('ENOTSUP', `fallocate: mode ${mode} is not supported (punch-hole and zero-range are)`)
  }
  const keepSize = (mode & FALLOC_FL_KEEP_SIZE) !== 0
  if (mode & FALLOC_FL_PUNCH_HOLE && !keepSize) throw new PagecowError('EINVAL', 'fallocate: punch-hole needs keep-size')
  const end = keepSize ? Math.min(offset + length, size) : offset + length
  return end > offset ? { offset, length: end - offset } : null
}
