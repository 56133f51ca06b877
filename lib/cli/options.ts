// Command-line values validated with zod strict schemas. A value that fails is a usage error
// (exit 2), told in the command line's words: `--width: must be at least 1`, never zod's.
import type { Command } from 'commander'
import { z } from 'zod'
import { MAX_PAGE_SIZE, MIN_PAGE_SIZE } from '../geometry.js'
import { formatSize } from './format-size.js'
import { parseSize } from './parse-size.js'
import { UsageError } from './usage-error.js'

/** A size or an offset: whole bytes or a binary suffix (see parseSize). */
export const sizeValue = z.string().transform((text, ctx) => {
  try {
    return parseSize(text)
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: err instanceof Error ? err.message : String(err) })
    return z.NEVER
  }
})

/** A page size: a size that is a power of two from 512 B to 1 MiB. */
export const pageSizeValue = sizeValue.refine(
  (n) => n >= MIN_PAGE_SIZE && n <= MAX_PAGE_SIZE && (n & (n - 1)) === 0,
  `must be a power of two from ${formatSize(MIN_PAGE_SIZE)} to ${formatSize(MAX_PAGE_SIZE)}: 512, 4k, 64k, 1M`,
)

/** A whole number from `min` to `max` (no suffixes: a count, not a size). */
export function countValue(min: number, max: number) {
  return z
    .string()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max))
}

/** Flags every command takes. */
export const commonFlags = {
  /** Print stack traces with errors. */
  debug: z.boolean().optional(),
}

/**
 * Validate a command's positional arguments and options together. Positionals are named in
 * errors in capitals (`STORE`), options as flags (`--page-size`). A failure is a UsageError.
 */
export function parseCommandLine<T extends z.ZodType>(cmd: Command, schema: T, args: Record<string, string>): z.output<T> {
  const result = schema.safeParse({ ...args, ...cmd.opts() }, { error: inCliWords })
  if (result.success) return result.data
  const issue = result.error.issues[0]
  const name = (key: PropertyKey) => (String(key) in args ? String(key).toUpperCase() : `--${String(key).replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`)
  const path = `pagecow ${cmd.name()}`
  if (issue?.code === 'unrecognized_keys') throw new UsageError(`${cmd.name()}: unknown option ${issue.keys.map(name).join(', ')}`, path)
  const where = issue && issue.path.length > 0 ? `${name(issue.path[0] as PropertyKey)}: ` : ''
  throw new UsageError(`${cmd.name()}: ${where}${issue?.message ?? 'invalid arguments'}`, path)
}

/** zod's default messages in plain words; a message a schema gives itself is kept. */
function inCliWords(issue: z.core.$ZodRawIssue): string | undefined {
  switch (issue.code) {
    case 'too_small':
      if (issue.origin === 'string') return Number(issue.minimum) <= 1 ? 'must not be empty' : `must be at least ${issue.minimum} characters`
      return `must be ${issue.inclusive === false ? 'more than' : 'at least'} ${issue.minimum}`
    case 'too_big':
      if (issue.origin === 'string') return `must be at most ${issue.maximum} characters`
      return `must be ${issue.inclusive === false ? 'less than' : 'at most'} ${issue.maximum}`
    case 'invalid_value':
      return `must be ${issue.values.map((v) => JSON.stringify(v)).join(' or ')}`
    case 'invalid_type':
      return issue.input === undefined ? 'is required' : `must be a ${issue.expected}`
    default:
      return undefined
  }
}

/** `--detect-zeroes off|on|unmap` (qemu's drive option of that name). */
export const detectZeroesValue = z.enum(['off', 'on', 'unmap'], { error: () => 'must be off, on or unmap' })

export const DETECT_ZEROES_HELP =
  "what writes of whole pages of zeros do, as qemu's detect-zeroes: off (default) stores them; on makes them ZERO pages, writing nothing (a page that was DATA keeps its space, as qemu keeps a zeroed cluster's); unmap makes them ZERO pages and gives DATA pages' space back"
