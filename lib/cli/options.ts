// Command-line values validated with zod strict schemas; a failure is an EINVAL PagecowError.
import type { Command } from 'commander'
import { z } from 'zod'
import { PagecowError } from '../index.js'
import { parseSize } from './parse-size.js'

/** A size or an offset: whole bytes or a binary suffix (see parseSize). */
export const sizeValue = z.string().transform((text, ctx) => {
  try {
    return parseSize(text)
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: err instanceof Error ? err.message : String(err) })
    return z.NEVER
  }
})

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
 * errors in capitals (`STORE`), options as flags (`--page-size`).
 */
export function parseCommandLine<T extends z.ZodType>(cmd: Command, schema: T, args: Record<string, string>): z.output<T> {
  const result = schema.safeParse({ ...args, ...cmd.opts() })
  if (result.success) return result.data
  const issue = result.error.issues[0]
  const name = (key: PropertyKey) => (String(key) in args ? String(key).toUpperCase() : `--${String(key).replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`)
  if (issue?.code === 'unrecognized_keys') {
    throw new PagecowError('EINVAL', `${cmd.name()}: unknown option ${issue.keys.map(name).join(', ')}`)
  }
  const where = issue && issue.path.length > 0 ? `${name(issue.path[0] as PropertyKey)}: ` : ''
  throw new PagecowError('EINVAL', `${cmd.name()}: ${where}${issue?.message ?? 'invalid arguments'}`)
}
