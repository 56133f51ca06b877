// The CLI's own file errors (--input, --output, demo files) as PagecowErrors with contract codes.
import { ERROR_CODES, isPagecowError, PagecowError, type ErrorCode } from '../errors.js'

const ALIASES: Record<string, ErrorCode> = { EPERM: 'EACCES', EDQUOT: 'ENOSPC', EISDIR: 'EINVAL', ENOTDIR: 'ENOENT' }

/** Wrap a Node file-system error; `what` says what the CLI was doing ("opening out.img"). */
export function cliFileError(err: unknown, what: string): PagecowError {
  if (isPagecowError(err)) return err
  const sysCode = String((err as { code?: unknown })?.code ?? '')
  const code: ErrorCode = sysCode in ERROR_CODES ? (sysCode as ErrorCode) : (ALIASES[sysCode] ?? 'EIO')
  const detail = err instanceof Error ? err.message : String(err)
  return new PagecowError(code, `${what}: ${detail}`, { cause: err })
}
