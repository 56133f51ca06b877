// The control protocol: JSON lines over the store's control socket. The client sends one request
// object per line; the server answers each with one line carrying its id — a result or an error
// (a PagecowError's code and message) — or, for a stream, any number of event lines and then an
// end or an error line. Requests on one connection are served in order, one at a time; a stream
// runs until the server ends it or the connection closes.
import { z } from 'zod'
import { ERROR_CODES, type ErrorCode } from '../errors.js'

/** The longest request line the server reads (the newline excluded); a longer one ends the connection. */
export const MAX_REQUEST_BYTES = 64 * 1024
/** The longest reply line the client reads: an inspect of a tree with a million changes fits. */
export const MAX_REPLY_BYTES = 256 * 1024 * 1024

const methodName = z.string().regex(/^[a-z][a-z0-9-]{0,63}$/, 'a method name: lower-case letters, digits and dashes')

/** `{"id": 7, "method": "flush", "params": {}}`: id a non-negative integer the reply repeats. */
export const requestSchema = z.strictObject({
  id: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  method: methodName,
  params: z.record(z.string(), z.unknown()).optional(),
})

export type ControlRequest = z.output<typeof requestSchema>

/** An error as it travels: the code is one of ERROR_CODES (a newer server's unknown one reads as EIO). */
export interface WireError {
  code: ErrorCode
  message: string
}

const wireErrorSchema = z.strictObject({ code: z.string().min(1).max(64), message: z.string().max(64 * 1024) })

/** Every line the server sends. `id` is null only for an error about a line that had no readable id. */
export const replySchema = z.union([
  z.strictObject({ id: z.number().int().min(0), result: z.unknown() }),
  z.strictObject({ id: z.number().int().min(0).nullable(), error: wireErrorSchema }),
  z.strictObject({ id: z.number().int().min(0), event: z.unknown() }),
  z.strictObject({ id: z.number().int().min(0), end: z.literal(true) }),
])

export type ControlReply = z.output<typeof replySchema>

/** A wire error's code as the client re-throws it: unknown codes become EIO. */
export function knownCode(code: string): ErrorCode {
  return Object.hasOwn(ERROR_CODES, code) ? (code as ErrorCode) : 'EIO'
}

/** One line of the protocol: the object as JSON and a newline. */
export function encodeLine(message: object): string {
  return `${JSON.stringify(message)}\n`
}
