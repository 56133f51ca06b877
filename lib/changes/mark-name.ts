// What a mark may be called: a name that works as a CLI argument, in a JSON line and as the NBD
// meta context `qemu:dirty-bitmap:NAME` (qemu's bitmap names: up to 1023 bytes, any text; ours
// are stricter so that no shell quoting or escaping is ever needed).
import { z } from 'zod'

export const MARK_NAME_MAX = 128

export const markNameSchema = z
  .string()
  .min(1, 'a mark name cannot be empty')
  .max(MARK_NAME_MAX, `a mark name has at most ${MARK_NAME_MAX} characters`)
  .regex(/^[A-Za-z0-9_][A-Za-z0-9_.:@+-]*$/, 'a mark name is letters, digits and _ . : @ + - (not starting with . : @ + -)')

/**
 * Which mark a query counts from: its name, or a mark as the library handed it out (then it must
 * still be that very mark: a long-lived reader such as an NBD client that chose a dirty bitmap
 * is told when the mark was removed or taken again, instead of seeing another mark's changes).
 */
export const sinceSchema = z.union([
  markNameSchema,
  z.object({ name: markNameSchema, epoch: z.number().int().positive() }),
])

export type Since = z.infer<typeof sinceSchema>
