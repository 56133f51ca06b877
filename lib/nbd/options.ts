// Options of the NBD server, validated with a strict zod schema (a misspelled option is an error).
import { z } from 'zod'
import { PagecowError } from '../index.js'
import { MAX_PAYLOAD_BYTES } from './handshake.js'
import { MAX_STRING_BYTES } from './protocol.js'

/** Default TCP host: loopback only (SPEC §8). */
export const DEFAULT_HOST = '127.0.0.1'
/** The IANA port of NBD. */
export const DEFAULT_PORT = 10809
/** Clients served at once; more are refused during the handshake. */
export const DEFAULT_MAX_CONNECTIONS = 64
/** Time a client has to finish the handshake. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000
/**
 * Request and reply data held for all clients together: four of the largest requests, or 512
 * of nbdcopy's. With it the server stays under about 300 MB RSS whatever its clients do.
 */
export const DEFAULT_MEMORY_LIMIT = 128 * 1024 * 1024
/** The least memory limit: one request of the largest size must fit. */
export const MIN_MEMORY_LIMIT = MAX_PAYLOAD_BYTES
/**
 * How long a client may make no progress (send nothing, take none of its replies) before it loses
 * its connection: at once if it holds server memory, else only when its slot is wanted.
 */
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000

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
    /**
     * Bytes of request and reply data (READ replies, WRITE payloads) held for all clients at once;
     * past it, requests wait for room. Default 128 MiB; at least 32 MiB (one largest request).
     */
    memoryLimit: z.number().int().min(MIN_MEMORY_LIMIT).max(2 ** 40).default(DEFAULT_MEMORY_LIMIT),
    /**
     * Milliseconds a client may make no progress (send no request, take none of its replies).
     * One that holds server memory meanwhile (replies it does not read, a WRITE payload it does
     * not finish) is then disconnected; one that holds nothing is disconnected only when the
     * server is full and another client connects. 0: never. Default 30000.
     */
    idleTimeoutMs: z.number().int().min(0).max(2 ** 31 - 1).refine((ms) => ms === 0 || ms >= 100, 'must be 0 (never) or at least 100').default(DEFAULT_IDLE_TIMEOUT_MS),
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

/** The server's defaults and bounds, for front ends that describe them (the CLI's --help). */
export const NBD_DEFAULTS = {
  host: DEFAULT_HOST,
  port: DEFAULT_PORT,
  maxConnections: DEFAULT_MAX_CONNECTIONS,
  handshakeTimeoutMs: DEFAULT_HANDSHAKE_TIMEOUT_MS,
  memoryLimit: DEFAULT_MEMORY_LIMIT,
  minMemoryLimit: MIN_MEMORY_LIMIT,
  idleTimeoutMs: DEFAULT_IDLE_TIMEOUT_MS,
} as const
