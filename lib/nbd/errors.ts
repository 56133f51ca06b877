// What an NBD client is told when a request fails: PagecowError codes mapped to NBD error values.
import { isPagecowError, type ErrorCode } from '../index.js'
import { NBD_EINVAL, NBD_EIO, NBD_ENOSPC, NBD_EPERM, NBD_ESHUTDOWN } from './protocol.js'

/** A request the server refuses before touching the store; `errno` is an NBD error value. */
export class NbdRequestError extends Error {
  readonly errno: number

  constructor(errno: number, message: string) {
    super(message)
    this.name = 'NbdRequestError'
    this.errno = errno
  }
}

/**
 * The NBD protocol allows only a few error values (EPERM, EIO, ENOMEM, EINVAL, ENOSPC,
 * EOVERFLOW, ENOTSUP, ESHUTDOWN); every store error lands on the nearest one, EIO when
 * nothing is nearer (ENOENT, EBUSY, ECORRUPT, ESTALE, EVERSION, the tree-mode codes).
 */
const BY_CODE: Partial<Record<ErrorCode, number>> = {
  EINVAL: NBD_EINVAL,
  ENOSPC: NBD_ENOSPC,
  EFBIG: NBD_ENOSPC, // the protocol asks for EFBIG and EDQUOT to become ENOSPC
  EROFS: NBD_EPERM,
  EACCES: NBD_EPERM,
  EPERM: NBD_EPERM,
  ECLOSED: NBD_ESHUTDOWN,
}

/** The NBD error value for a failure: an NbdRequestError's own, a PagecowError's mapped, else EIO. */
export function nbdErrnoOf(err: unknown): number {
  if (err instanceof NbdRequestError) return err.errno
  if (isPagecowError(err)) return BY_CODE[err.code] ?? NBD_EIO
  return NBD_EIO
}
