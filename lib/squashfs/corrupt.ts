// The one way the squashfs reader reports a damaged image: ECORRUPT, naming the image and what
// in it does not hold together.
import { PagecowError } from '../errors.js'

/** An ECORRUPT error about the image at `path`; `what` says which structure and why. */
export function corrupt(path: string, what: string, cause?: unknown): PagecowError {
  return new PagecowError('ECORRUPT', `squashfs image ${path}: ${what}`, cause === undefined ? {} : { cause })
}
