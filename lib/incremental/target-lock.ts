// One apply at a time onto a target: two applies interleaving their records would leave a target
// that is neither, and each would then record a position that is not true. A flock(2) on the
// target (the image, or the root directory of a tree) taken before anything is checked; the
// kernel drops it when the process ends, however it ends, so a killed apply never leaves it held.
import * as fs from '../fs.js'
import { PagecowError } from '../errors.js'

/** Lock the open target `fd` for this apply, or throw EBUSY if another apply holds it. */
export function lockTarget(fd: number, target: string): void {
  if (!fs.tryFlockExclusive(fd)) {
    throw new PagecowError('EBUSY', `${target} is being updated by another pagecow apply; wait for it to finish (nothing was applied)`)
  }
}
