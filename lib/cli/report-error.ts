// How a failed run ends: one line `pagecow: <message> (<CODE>)` on stderr (the stack only with
// --debug), `{"error": {"code", "message"}}` on stdout as well with --json, and the exit code.
import { isPagecowError } from '../errors.js'
import { writeTo, type CliIo } from './cli-io.js'
import { inCommandWords } from './cli-words.js'
import { EXIT, type ExitCode } from './exit-code.js'
import { NotCleanError } from './not-clean-error.js'
import { UsageError } from './usage-error.js'

export interface ReportOptions {
  /** Print the stack (and each cause's). */
  debug: boolean
  /** The run asked for JSON: the error goes to stdout as JSON too. */
  json: boolean
  /** The command that ran, whose name replaces a library call's in a message. */
  command?: string | undefined
}

/** True for a write to a closed pipe (`pagecow read … | head`): nothing left to tell anyone. */
export function isBrokenPipe(err: unknown): boolean {
  return (err as { code?: unknown })?.code === 'EPIPE'
}

/** Print `err` for a person (and for a script with --json) and return the exit code. */
export async function reportError(thrown: unknown, io: CliIo, options: ReportOptions): Promise<ExitCode> {
  const err = thrown instanceof NotCleanError ? thrown : inCommandWords(thrown, options.command)
  if (err instanceof UsageError) {
    if (err.printedHelp) return err.commanderExitCode === 0 ? EXIT.OK : EXIT.USAGE
    if (options.json) await writeTo(io.stdout, errorJson('EINVAL', err.message))
    await writeTo(io.stderr, `pagecow: ${err.message} (EINVAL)\nTry '${err.commandPath} --help'.\n`)
    return EXIT.USAGE
  }
  if (isBrokenPipe(err)) return EXIT.ERROR
  const code = isPagecowError(err) ? err.code : 'EIO'
  const message = oneLine(plainSystemErrors(err instanceof Error ? err.message : String(err)))
  const hint = isPagecowError(err) || options.debug ? '' : '; this is a bug in pagecow: rerun with --debug and report the stack trace'
  // fsck's report is its JSON: a second document after it would make stdout unreadable.
  if (options.json && !(err instanceof NotCleanError)) await writeTo(io.stdout, errorJson(code, message + hint))
  let text = `pagecow: ${message}${hint} (${code})\n`
  if (options.debug) text += `${stackOf(err)}\n`
  await writeTo(io.stderr, text)
  return err instanceof NotCleanError ? EXIT.NOT_CLEAN : EXIT.ERROR
}

function errorJson(code: string, message: string): string {
  return `${JSON.stringify({ error: { code, message } })}\n`
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ')
}

/**
 * Node's system error text inside a message ("EEXIST: file already exists, mkdir '/x'") in plain
 * words ("file already exists"): the code ends the line anyway, and the path is in the message.
 */
export function plainSystemErrors(message: string): string {
  return message.replace(/\b[A-Z][A-Z0-9_]{1,15}: ([a-z][^,:]*?)(?:, [a-z_]+(?: '[^']*'(?: -> '[^']*')?)?)?(?=$|[;)\n]| \()/g, '$1')
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
