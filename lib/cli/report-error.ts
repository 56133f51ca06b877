// How a failed run ends: one line `pagecow: <message> (<CODE>)` on stderr, the stack only with --debug.
import { isPagecowError } from '../index.js'
import { writeTo, type CliIo } from './cli-io.js'
import { UsageError } from './usage-error.js'

/** True for a write to a closed pipe (`pagecow read … | head`): nothing left to tell anyone. */
export function isBrokenPipe(err: unknown): boolean {
  return (err as { code?: unknown })?.code === 'EPIPE'
}

/** Print `err` for a person and return the exit code. */
export async function reportError(err: unknown, io: CliIo, debug: boolean): Promise<number> {
  if (err instanceof UsageError) {
    if (err.helpShown) return err.exitCode
    await writeTo(io.stderr, `pagecow: ${err.message} (EINVAL)\nTry '${err.commandPath} --help'.\n`)
    return 1
  }
  if (isBrokenPipe(err)) return 1
  const code = isPagecowError(err) ? err.code : 'EIO'
  const message = err instanceof Error ? err.message : String(err)
  const hint = isPagecowError(err) || debug ? '' : '; this is a bug in pagecow: rerun with --debug and report the stack trace'
  let text = `pagecow: ${oneLine(message)}${hint} (${code})\n`
  if (debug) text += `${stackOf(err)}\n`
  await writeTo(io.stderr, text)
  return 1
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ')
}

/** The stack, followed by each `cause`'s. */
function stackOf(err: unknown): string {
  const parts: string[] = []
  for (let e: unknown = err, depth = 0; e !== undefined && depth < 5; depth++) {
    parts.push(e instanceof Error ? (e.stack ?? e.message) : String(e))
    e = e instanceof Error ? e.cause : undefined
    if (e !== undefined) parts.push('caused by:')
  }
  return parts.join('\n')
}
