// The fixed newstyle handshake: greet, read the client's flags, answer options until the client
// picks the export (GO or EXPORT_NAME), aborts, or goes away.
import type { Socket } from 'node:net'
import type { Mark } from '../index.js'
import { matchContexts, numberContexts, offeredContexts, type SelectedContext } from './meta-contexts.js'
import {
  MAX_STRING_BYTES,
  NBD_FLAG_CAN_MULTI_CONN,
  NBD_FLAG_C_FIXED_NEWSTYLE,
  NBD_FLAG_C_NO_ZEROES,
  NBD_FLAG_FIXED_NEWSTYLE,
  NBD_FLAG_HAS_FLAGS,
  NBD_FLAG_NO_ZEROES,
  NBD_FLAG_READ_ONLY,
  NBD_FLAG_SEND_CACHE,
  NBD_FLAG_SEND_DF,
  NBD_FLAG_SEND_FAST_ZERO,
  NBD_FLAG_SEND_FLUSH,
  NBD_FLAG_SEND_FUA,
  NBD_FLAG_SEND_TRIM,
  NBD_FLAG_SEND_WRITE_ZEROES,
  NBD_INFO_BLOCK_SIZE,
  NBD_INFO_DESCRIPTION,
  NBD_INFO_EXPORT,
  NBD_INFO_NAME,
  NBD_MAGIC,
  NBD_OPTS_MAGIC,
  NBD_OPT_ABORT,
  NBD_OPT_EXPORT_NAME,
  NBD_OPT_GO,
  NBD_OPT_INFO,
  NBD_OPT_LIST,
  NBD_OPT_LIST_META_CONTEXT,
  NBD_OPT_SET_META_CONTEXT,
  NBD_OPT_STARTTLS,
  NBD_OPT_STRUCTURED_REPLY,
  NBD_REP_ACK,
  NBD_REP_ERR_INVALID,
  NBD_REP_ERR_POLICY,
  NBD_REP_ERR_TOO_BIG,
  NBD_REP_ERR_UNKNOWN,
  NBD_REP_ERR_UNSUP,
  NBD_REP_INFO,
  NBD_REP_MAGIC,
  NBD_REP_META_CONTEXT,
  NBD_REP_SERVER,
} from './protocol.js'
import type { SocketReader } from './socket-reader.js'

/** Largest option payload read; a bigger one ends the session (no real option comes close). */
export const MAX_OPTION_BYTES = 64 * 1024
/** Options one session may send before it is taken for a denial of service. */
export const MAX_OPTIONS = 1024
/** Options a refused session may send before it is closed. */
const MAX_REFUSED_OPTIONS = 16
/** Largest READ or WRITE payload, also the advertised maximum block size (32 MiB). */
export const MAX_PAYLOAD_BYTES = 32 * 1024 * 1024

/** What the handshake needs to know about the one export. */
export interface ExportDescription {
  /** The export's name; the empty name (the default export) is accepted too. */
  name: string
  /** Shown by `nbdinfo` and in LIST replies; may be empty. */
  description: string
  /** Size in bytes, read when the client asks. */
  size: () => number
  readOnly: boolean
  /** The store's page size: the preferred block size. */
  pageSize: number
  /** The store's marks (oldest first), read at each context query: each is a `qemu:dirty-bitmap:NAME`. Default: none. */
  marks?: () => Mark[]
}

/** The outcome of a successful handshake. */
export interface Negotiated {
  exportName: string
  size: number
  /** Transmission flags as sent to the client. */
  flags: number
  structuredReplies: boolean
  /** The metadata contexts the client selected (empty: none), in the order of BLOCK_STATUS replies. */
  metaContexts: SelectedContext[]
}

/** How an option is refused instead of answered (over the connection cap, shutting down). */
export interface Refusal {
  reply: number
  message: string
}

/** The transmission flags pagecow advertises. */
export function transmissionFlags(readOnly: boolean, structuredReplies: boolean): number {
  let flags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_CAN_MULTI_CONN | NBD_FLAG_SEND_CACHE
  if (structuredReplies) flags |= NBD_FLAG_SEND_DF
  if (readOnly) flags |= NBD_FLAG_READ_ONLY
  else flags |= NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO
  return flags
}

/** A malformed option payload: answered with NBD_REP_ERR_INVALID. */
class InvalidOption extends Error {}

/** Cursor over an option's payload; every read is bounds-checked. */
class OptionData {
  readonly #data: Buffer
  #pos = 0

  constructor(data: Buffer) {
    this.#data = data
  }

  get remaining(): number {
    return this.#data.length - this.#pos
  }

  u16(): number {
    this.#need(2)
    const v = this.#data.readUInt16BE(this.#pos)
    this.#pos += 2
    return v
  }

  u32(): number {
    this.#need(4)
    const v = this.#data.readUInt32BE(this.#pos)
    this.#pos += 4
    return v
  }

  /** A length-prefixed (u32) string. */
  string(what: string): string {
    const length = this.u32()
    if (length > MAX_STRING_BYTES) throw new InvalidOption(`${what} is longer than ${MAX_STRING_BYTES} bytes`)
    this.#need(length)
    const bytes = this.#data.subarray(this.#pos, this.#pos + length)
    this.#pos += length
    if (bytes.includes(0)) throw new InvalidOption(`${what} contains a NUL byte`)
    return bytes.toString('utf8')
  }

  end(): void {
    if (this.remaining !== 0) throw new InvalidOption(`${this.remaining} unexpected bytes at the end of the option`)
  }

  #need(n: number): void {
    if (this.remaining < n) throw new InvalidOption('the option data is shorter than its fields say')
  }
}

export interface HandshakeOptions {
  /** Answer every option with this error instead (the client may only abort). */
  refusal: () => Refusal | undefined
}

/**
 * Run the handshake on `socket`. Resolves with the negotiated parameters when the client
 * enters transmission, or undefined when the session ended during option haggling (abort,
 * bad magic, unknown client flags, unknown export via EXPORT_NAME, disconnect).
 */
export async function negotiate(socket: Socket, reader: SocketReader, exp: ExportDescription, options: HandshakeOptions): Promise<Negotiated | undefined> {
  return new Handshake(socket, reader, exp, options).run()
}

class Handshake {
  readonly #socket: Socket
  readonly #reader: SocketReader
  readonly #exp: ExportDescription
  readonly #options: HandshakeOptions
  #noZeroes = false
  #structured = false
  #metaContexts: SelectedContext[] = []

  constructor(socket: Socket, reader: SocketReader, exp: ExportDescription, options: HandshakeOptions) {
    this.#socket = socket
    this.#reader = reader
    this.#exp = exp
    this.#options = options
  }

  async run(): Promise<Negotiated | undefined> {
    const greeting = Buffer.alloc(18)
    greeting.writeBigUInt64BE(NBD_MAGIC, 0)
    greeting.writeBigUInt64BE(NBD_OPTS_MAGIC, 8)
    greeting.writeUInt16BE(NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES, 16)
    this.#socket.write(greeting)
    const clientFlags = (await this.#reader.read(4)).readUInt32BE(0)
    // Unknown client flags: the protocol says to drop the connection.
    if ((clientFlags & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) !== 0) return undefined
    this.#noZeroes = (clientFlags & NBD_FLAG_C_NO_ZEROES) !== 0

    for (let count = 0; ; count++) {
      const header = await this.#reader.read(16)
      if (header.readBigUInt64BE(0) !== NBD_OPTS_MAGIC) return undefined // not an NBD client
      const option = header.readUInt32BE(8)
      const length = header.readUInt32BE(12)
      if (length > MAX_OPTION_BYTES) {
        this.#reply(option, NBD_REP_ERR_TOO_BIG, `option data of ${length} bytes is over the ${MAX_OPTION_BYTES}-byte limit`)
        return undefined
      }
      const data = await this.#reader.read(length)
      const refusal = this.#options.refusal()
      if (refusal) {
        if (option === NBD_OPT_ABORT) return this.#abort(option)
        if (option === NBD_OPT_EXPORT_NAME || count >= MAX_REFUSED_OPTIONS) return undefined // no way to answer with an error
        this.#reply(option, refusal.reply, refusal.message)
        continue
      }
      if (count >= MAX_OPTIONS) {
        this.#reply(option, NBD_REP_ERR_POLICY, `more than ${MAX_OPTIONS} options in one handshake`)
        return undefined
      }
      try {
        const done = this.#option(option, data)
        if (done !== 'continue') return done
      } catch (err) {
        if (!(err instanceof InvalidOption)) throw err
        this.#reply(option, NBD_REP_ERR_INVALID, err.message)
      }
    }
  }

  /** Answer one option; 'continue' keeps haggling, anything else ends the handshake. */
  #option(option: number, data: Buffer): Negotiated | undefined | 'continue' {
    switch (option) {
      case NBD_OPT_EXPORT_NAME:
        return this.#exportName(data)
      case NBD_OPT_ABORT:
        return this.#abort(option)
      case NBD_OPT_LIST:
        if (data.length !== 0) throw new InvalidOption('NBD_OPT_LIST takes no data')
        this.#reply(option, NBD_REP_SERVER, this.#serverEntry())
        this.#reply(option, NBD_REP_ACK)
        return 'continue'
      case NBD_OPT_STARTTLS:
        this.#reply(option, NBD_REP_ERR_POLICY, 'TLS is not supported; pagecow serves loopback and Unix sockets in the clear')
        return 'continue'
      case NBD_OPT_INFO:
      case NBD_OPT_GO:
        return this.#info(option, data)
      case NBD_OPT_STRUCTURED_REPLY:
        if (data.length !== 0) throw new InvalidOption('NBD_OPT_STRUCTURED_REPLY takes no data')
        this.#structured = true
        this.#reply(option, NBD_REP_ACK)
        return 'continue'
      case NBD_OPT_LIST_META_CONTEXT:
      case NBD_OPT_SET_META_CONTEXT:
        this.#metaContext(option, data)
        return 'continue'
      default:
        this.#reply(option, NBD_REP_ERR_UNSUP, `option ${option} is not supported`)
        return 'continue'
    }
  }

  #abort(option: number): undefined {
    this.#reply(option, NBD_REP_ACK)
    return undefined
  }

  /** The old way in: no error can be sent, so an unknown name ends the session. */
  #exportName(data: Buffer): Negotiated | undefined {
    const name = data.toString('utf8')
    if (!this.#isOurs(name)) return undefined
    const negotiated = this.#negotiated(name)
    const reply = Buffer.alloc(this.#noZeroes ? 10 : 134)
    reply.writeBigUInt64BE(BigInt(negotiated.size), 0)
    reply.writeUInt16BE(negotiated.flags, 8)
    this.#socket.write(reply)
    return negotiated
  }

  /** NBD_OPT_INFO and NBD_OPT_GO: describe the export; GO then enters transmission. */
  #info(option: number, data: Buffer): Negotiated | 'continue' {
    const cursor = new OptionData(data)
    const name = cursor.string('the export name')
    const count = cursor.u16()
    const requests = new Set<number>()
    for (let i = 0; i < count; i++) requests.add(cursor.u16())
    cursor.end()
    if (!this.#isOurs(name)) {
      this.#reply(option, NBD_REP_ERR_UNKNOWN, `no export named "${name}"; this server exports "${this.#exp.name}"`)
      return 'continue'
    }
    const negotiated = this.#negotiated(name)
    const exportInfo = Buffer.alloc(12)
    exportInfo.writeUInt16BE(NBD_INFO_EXPORT, 0)
    exportInfo.writeBigUInt64BE(BigInt(negotiated.size), 2)
    exportInfo.writeUInt16BE(negotiated.flags, 10)
    this.#reply(option, NBD_REP_INFO, exportInfo)
    // Block sizes are always sent: any client may use them, none is required to ask.
    const blockSize = Buffer.alloc(14)
    blockSize.writeUInt16BE(NBD_INFO_BLOCK_SIZE, 0)
    blockSize.writeUInt32BE(1, 2) // any byte is addressable: partial pages are read-modify-written
    blockSize.writeUInt32BE(this.#exp.pageSize, 6)
    blockSize.writeUInt32BE(MAX_PAYLOAD_BYTES, 10)
    this.#reply(option, NBD_REP_INFO, blockSize)
    if (requests.has(NBD_INFO_NAME)) this.#reply(option, NBD_REP_INFO, infoString(NBD_INFO_NAME, this.#exp.name))
    if (requests.has(NBD_INFO_DESCRIPTION) && this.#exp.description) {
      this.#reply(option, NBD_REP_INFO, infoString(NBD_INFO_DESCRIPTION, this.#exp.description))
    }
    this.#reply(option, NBD_REP_ACK)
    return option === NBD_OPT_GO ? negotiated : 'continue'
  }

  /** LIST_META_CONTEXT and SET_META_CONTEXT: base:allocation and a dirty bitmap per mark (meta-contexts.ts). */
  #metaContext(option: number, data: Buffer): void {
    const set = option === NBD_OPT_SET_META_CONTEXT
    if (set) this.#metaContexts = [] // replaced even when this option fails
    if (set && !this.#structured) throw new InvalidOption('negotiate structured replies before selecting a metadata context')
    const cursor = new OptionData(data)
    const name = cursor.string('the export name')
    const count = cursor.u32()
    const queries: string[] = []
    for (let i = 0; i < count; i++) queries.push(cursor.string('a metadata context query'))
    cursor.end()
    if (!this.#isOurs(name)) {
      this.#reply(option, NBD_REP_ERR_UNKNOWN, `no export named "${name}"`)
      return
    }
    const matched = matchContexts(queries, offeredContexts(this.#exp.marks?.() ?? []), !set)
    // LIST replies carry ID 0 (reserved there); a selection's IDs are what BLOCK_STATUS replies carry.
    const contexts = set ? numberContexts(matched) : matched.map((c) => ({ ...c, id: 0 }))
    for (const context of contexts) {
      const reply = Buffer.alloc(4 + Buffer.byteLength(context.name))
      reply.writeUInt32BE(context.id, 0)
      reply.write(context.name, 4)
      this.#reply(option, NBD_REP_META_CONTEXT, reply)
    }
    if (set) this.#metaContexts = contexts
    this.#reply(option, NBD_REP_ACK)
  }

  #isOurs(name: string): boolean {
    return name === '' || name === this.#exp.name
  }

  #negotiated(name: string): Negotiated {
    return {
      exportName: name,
      size: this.#exp.size(),
      flags: transmissionFlags(this.#exp.readOnly, this.#structured),
      structuredReplies: this.#structured,
      metaContexts: this.#structured ? this.#metaContexts : [],
    }
  }

  #serverEntry(): Buffer {
    const name = Buffer.from(this.#exp.name, 'utf8')
    const description = Buffer.from(this.#exp.description, 'utf8')
    const entry = Buffer.alloc(4 + name.length + description.length)
    entry.writeUInt32BE(name.length, 0)
    name.copy(entry, 4)
    description.copy(entry, 4 + name.length)
    return entry
  }

  /** One option reply; `data` is a payload or, for errors, a message for people. */
  #reply(option: number, type: number, data?: Buffer | string): void {
    const payload = typeof data === 'string' ? Buffer.from(data.slice(0, 1024), 'utf8') : (data ?? Buffer.alloc(0))
    const header = Buffer.alloc(20)
    header.writeBigUInt64BE(NBD_REP_MAGIC, 0)
    header.writeUInt32BE(option >>> 0, 8)
    header.writeUInt32BE(type >>> 0, 12)
    header.writeUInt32BE(payload.length, 16)
    this.#socket.write(payload.length > 0 ? Buffer.concat([header, payload]) : header)
  }
}

function infoString(type: number, text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8')
  const info = Buffer.alloc(2 + bytes.length)
  info.writeUInt16BE(type, 0)
  bytes.copy(info, 2)
  return info
}
