// Options of the NBD server, validated with a strict zod schema (a misspelled option is an error).
import { z } from 'zod'
import { PagecowError } from '../index.js'
import { MAX_STRING_BYTES } from './protocol.js'

/** Default TCP host: loopback only (SPEC §8). */
export const DEFAULT_HOST = '127.0.0.1'
/** The IANA port of NBD. */
export const DEFAULT_PORT = 10809
/** Clients served at once; more are refused during the handshake. */
export const DEFAULT_MAX_CONNECTIONS = 64
/** Time a client has to finish the handshake. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000

const protocolString = (what: string) =>
  z
    .string()
    .refine((s) => Buffer.byteLength(s, 'utf8') <= MAX_STRING_BYTES, `${what} is longer than ${MAX_STRING_BYTES} bytes`)
    .refine((s) => !s.includes('\0'), `${what} contains a NUL character`)

export const serverOptionsSchema = z
  .strictObject({
    /** TCP address to listen on. Default 127.0.0.1; not with `socket`. */
    host: z.string().min(1).optional(),
    /** TCP port. Default 10809; 0 picks a free port. Not with `socket`. */
    port: z.number().int().min(0).max(65535).optional(),
    /** Listen on this Unix socket path instead of TCP. */
    socket: z.string().min(1).optional(),
    /** Serve read-only even if the store is writable. Default: read-only iff the store is. */
    readOnly: z.boolean().default(false),
    /** The export's name. Default '' (the default export); the empty name is always accepted. */
    exportName: protocolString('the export name').default(''),
    /** Shown to clients that ask (nbdinfo). Default: "pagecow store <path>". */
    description: protocolString('the description').optional(),
    /** Clients served at once; more are refused politely. Default 64. */
    maxConnections: z.number().int().min(1).max(4096).default(DEFAULT_MAX_CONNECTIONS),
    /** Milliseconds a client has to finish the handshake. Default 10000. */
    handshakeTimeoutMs: z.number().int().min(10).max(3_600_000).default(DEFAULT_HANDSHAKE_TIMEOUT_MS),
  })
  .refine((o) => o.socket === undefined || (o.host === undefined && o.port === undefined), {
    message: 'give either a Unix socket or a host and port, not both',
    path: ['socket'],
  })

export type NbdServerOptions = z.input<typeof serverOptionsSchema>
export type ServerSettings = z.output<typeof serverOptionsSchema>

/** Parse server options; a bad one is a PagecowError EINVAL naming it. */
export function parseServerOptions(options: unknown): ServerSettings {
  const result = serverOptionsSchema.safeParse(options ?? {})
  if (result.success) return result.data
  const first = result.error.issues[0]
  const where = first && first.path.length > 0 ? first.path.join('.') : 'options'
  const message = first?.code === 'unrecognized_keys' ? `unknown option ${first.keys.map((k) => `"${k}"`).join(', ')}` : `${where}: ${first?.message ?? 'invalid'}`
  throw new PagecowError('EINVAL', `NBD server: ${message}`, { cause: result.error })
}
