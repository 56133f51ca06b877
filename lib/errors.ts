// The error contract: every failure the library reports is a PagecowError with a stable code.
import { z } from 'zod'

/**
 * Stable error codes. A code never changes meaning; messages may. Each maps to the errno a
 * FUSE reply or an NBD error needs (Linux numbering).
 */
export const ERROR_CODES = {
  /** Bad argument: negative or non-integer offset, bad page size, misspelled option. */
  EINVAL: 22,
  /** A store, lower or path that does not exist. */
  ENOENT: 2,
  /** Creating something that already exists (a store in a non-empty directory). */
  EEXIST: 17,
  /** The store is open for writing elsewhere; the message names the holder. */
  EBUSY: 16,
  /** The disk holding the upper or the database is full; the failed write changed nothing. */
  ENOSPC: 28,
  /** The database or an upper file is damaged; nothing from it is served. */
  ECORRUPT: 117, // EUCLEAN, "structure needs cleaning"
  /** The lower changed since the store was created (size, mtime or sampled bytes). */
  ESTALE: 116,
  /**
   * The store's format is not one this pagecow reads: written by a newer pagecow, or by an older
   * one and opened read-only (a writable open upgrades it; a read-only one never writes).
   */
  EVERSION: 95, // EOPNOTSUPP
  /** A write to a store opened read-only. */
  EROFS: 30,
  /** An operation on a closed store. */
  ECLOSED: 9, // EBADF
  /** A size or offset past what the store (or the file system under it) can hold. */
  EFBIG: 27,
  /** An I/O error from the file system under the store or the lower. */
  EIO: 5,
  /** Permission denied by the file system. */
  EACCES: 13,
  /** Tree mode: a path component that must be a directory is not one. */
  ENOTDIR: 20,
  /** Tree mode: a directory where a non-directory is needed (unlink, open for writing). */
  EISDIR: 21,
  /** Tree mode: removing or replacing a directory that is not empty in the merged view. */
  ENOTEMPTY: 39,
  /** Tree mode: a name over 255 bytes or a path over 4096 bytes. */
  ENAMETOOLONG: 36,
  /** Tree mode: the lower crosses into another file system (a mount point inside the lower). */
  EXDEV: 18,
  /** Tree mode: an operation the namespace does not allow (a hard link to a directory). */
  EPERM: 1,
  /** Tree mode: a symlink where the path API would have to follow one (it never does). */
  ELOOP: 40,
  /** Tree mode: no such extended attribute. */
  ENODATA: 61,
  /** Tree mode: not supported (an unknown xattr namespace, chmod of a symlink, I/O on a device node). */
  ENOTSUP: 95,
  /** Tree mode: an extended attribute value over 64 KiB. */
  E2BIG: 7,
  /** Tree mode: a handle used for what it was not opened for (reading a write-only handle). */
  EBADF: 9,
  /**
   * A file of the store is not what the store made: a symlink, a directory, a FIFO or another
   * non-regular file, or a file owned by someone other than the owner of the store directory.
   * The store is refused rather than follow or trust it.
   */
  EUNSAFE: 1, // EPERM
  /** Interrupted (a signal, an AbortSignal) before it finished; nothing of it was kept. */
  EINTR: 4,
  /** A peer made no progress for the time allowed (an NBD client cut off by the idle timeout). */
  ETIMEDOUT: 110,
  /**
   * A write waited for a frozen file (`freeze()`) longer than that freeze's `timeoutMs`; it did not
   * land. The file stays frozen until thaw(); a write after the thaw goes through.
   */
  EFROZEN: 110, // ETIMEDOUT: what the writer's write(2) through a mount gets
  /**
   * An incremental that does not apply to this target: another store's, one that starts at a mark
   * the target is not at (an incremental missing in between, or one applied out of order), or a
   * target that does not hold the content the incremental expects. Nothing was applied.
   */
  ECHAIN: 22, // EINVAL
} as const

export type ErrorCode = keyof typeof ERROR_CODES

export interface PagecowErrorOptions {
  cause?: unknown
}

/** The one error type of the library. `code` is the contract; `errno` is for FUSE and NBD. */
export class PagecowError extends Error {
  readonly code: ErrorCode
  readonly errno: number

  constructor(code: ErrorCode, message: string, options: PagecowErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'PagecowError'
    this.code = code
    this.errno = ERROR_CODES[code]
  }
}

export function isPagecowError(err: unknown, code?: ErrorCode): err is PagecowError {
  return err instanceof PagecowError && (code === undefined || err.code === code)
}

const FS_CODES: Record<string, ErrorCode> = {
  ENOENT: 'ENOENT',
  EEXIST: 'EEXIST',
  ENOSPC: 'ENOSPC',
  EDQUOT: 'ENOSPC',
  EFBIG: 'EFBIG',
  EROFS: 'EROFS',
  EACCES: 'EACCES',
  EPERM: 'EACCES',
  EBUSY: 'EBUSY',
  EINVAL: 'EINVAL',
  ENOTDIR: 'ENOTDIR',
  EISDIR: 'EISDIR',
  ENOTEMPTY: 'ENOTEMPTY',
  ENAMETOOLONG: 'ENAMETOOLONG',
  EXDEV: 'EXDEV',
  ELOOP: 'ELOOP',
  ENODATA: 'ENODATA',
  ENOTSUP: 'ENOTSUP',
  EOPNOTSUPP: 'ENOTSUP',
  E2BIG: 'E2BIG',
}

/**
 * Wrap a Node file-system error (or a SQLite error) in a PagecowError, keeping it as `cause`.
 * `what` says what we were doing, e.g. "writing the upper".
 */
export function fromSystemError(err: unknown, what: string): PagecowError {
  if (err instanceof PagecowError) return err
  const e = err as { code?: unknown; message?: unknown }
  const sysCode = typeof e?.code === 'string' ? e.code : ''
  const detail = typeof e?.message === 'string' ? e.message : String(err)
  if (sysCode.startsWith('SQLITE_')) return fromSqliteError(sysCode, detail, what, err)
  const code = FS_CODES[sysCode] ?? 'EIO'
  const hint = code === 'ENOSPC' ? ' (the disk is full; free space and retry)' : ''
  return new PagecowError(code, `${what}: ${detail}${hint}`, { cause: err })
}

function fromSqliteError(sysCode: string, detail: string, what: string, cause: unknown) {
  if (sysCode === 'SQLITE_FULL') {
    return new PagecowError('ENOSPC', `${what}: the disk is full (${detail}); this change was not committed (writes not yet flushed stay pending, not durable); free space and retry`, { cause })
  }
  if (sysCode === 'SQLITE_BUSY' || sysCode.startsWith('SQLITE_BUSY_')) {
    return new PagecowError('EBUSY', `${what}: the database is busy (${detail})`, { cause })
  }
  if (sysCode === 'SQLITE_READONLY' || sysCode.startsWith('SQLITE_READONLY_')) {
    return new PagecowError('EROFS', `${what}: the database is read-only (${detail})`, { cause })
  }
  if (sysCode === 'SQLITE_CORRUPT' || sysCode === 'SQLITE_NOTADB' || sysCode.startsWith('SQLITE_CORRUPT_')) {
    return new PagecowError('ECORRUPT', `${what}: the store database is damaged (${detail}); run \`pagecow fsck\``, { cause })
  }
  if (sysCode === 'SQLITE_CANTOPEN') {
    return new PagecowError('ENOENT', `${what}: cannot open the store database (${detail})`, { cause })
  }
  return new PagecowError('EIO', `${what}: ${detail}`, { cause })
}

/** Turn a zod failure into an EINVAL that names the offending option. */
export function fromZodError(err: z.ZodError, what: string): PagecowError {
  const first = err.issues[0]
  const where = first && first.path.length > 0 ? first.path.join('.') : 'value'
  const message = first?.code === 'unrecognized_keys' ? `unknown option ${first.keys.map((k) => `"${k}"`).join(', ')}` : `${where}: ${first?.message ?? 'invalid'}`
  return new PagecowError('EINVAL', `${what}: ${message}`, { cause: err })
}

/** Parse `input` with a zod schema, reporting failure as EINVAL. */
export function parseWith<T extends z.ZodType>(schema: T, input: unknown, what: string): z.output<T> {
  const result = schema.safeParse(input)
  if (!result.success) throw fromZodError(result.error, what)
  return result.data
}
