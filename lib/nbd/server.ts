// The NBD server: one ImageStore exported to every client, over TCP (loopback by default,
// SPEC §8) or a Unix socket. All connections share the store, so they see one content.
import { EventEmitter } from 'node:events'
import net from 'node:net'
import { performance } from 'node:perf_hooks'
import { ImageStore, PagecowError } from '../index.js'
import { BufferPool } from './buffer-pool.js'
import { Connection } from './connection.js'
import { MAX_PAYLOAD_BYTES, negotiate, type ExportDescription, type Refusal } from './handshake.js'
import { MemoryBudget } from './memory-budget.js'
import { ReadPolicy } from './read-policy.js'
import { DEFAULT_HOST, DEFAULT_PORT, parseServerOptions, type NbdServerOptions, type ServerSettings } from './options.js'
import { listenError, listenPrivately, type PrivateSocket } from './private-socket.js'
import { NBD_REP_ERR_POLICY, NBD_REP_ERR_SHUTDOWN } from './protocol.js'
import { ConnectionClosedError, SocketReader } from './socket-reader.js'

export type { NbdServerOptions } from './options.js'

/** How long close() waits for clients to take their last replies before cutting them off. */
const CLOSE_GRACE_MS = 5000
/** How long a session that ended in the handshake waits for the client to hang up. */
const LINGER_MS = 2000
/** Longest pause between two idle checks; shorter for short idle timeouts. */
const MAX_IDLE_CHECK_MS = 1000

interface Session {
  id: number
  remote: string
  socket: net.Socket
  connection: Connection | undefined
  closed: Promise<void>
  /** Disconnected by the server (to make room, for holding memory): no longer counted as served. */
  leaving: boolean
  reason: DisconnectReason
}

/** Why a client was disconnected by the server rather than by itself (the `'disconnect'` event's `reason`). */
export type DisconnectReason = 'client' | 'idle' | 'stalled' | 'shutdown'

/** Where the server listens. */
export type NbdAddress = { host: string; port: number } | { socket: string }

/**
 * An NBD server over an open ImageStore. Start it with `NbdServer.listen(store, options)`;
 * `close()` stops accepting, lets requests in flight finish, disconnects the clients and
 * flushes the store (the store itself stays open: its owner closes it).
 *
 * Events: `'warning'` (an Error the operator should see: a store failure while serving, a
 * client disconnected for holding memory without progress), `'connection'` (with `{ id, remote }`),
 * `'disconnect'` (with `{ id, remote, reason }`, a DisconnectReason), `'close'`.
 */
export class NbdServer extends EventEmitter {
  readonly store: ImageStore
  /** The export's name ('' is the default export). */
  readonly exportName: string
  /** Whether clients get a read-only export. */
  readonly readOnly: boolean
  readonly #settings: ServerSettings
  readonly #server: net.Server
  readonly #sessions = new Set<Session>()
  readonly #refused = new Set<Session>()
  readonly #export: ExportDescription
  readonly #buffers: BufferPool
  readonly #budget: MemoryBudget
  readonly #reads = new ReadPolicy()
  /** One connection's share of the budget: a quarter, or one largest request if more. */
  readonly #connectionLimit: number
  #idleCheck: NodeJS.Timeout | undefined
  #unixSocket: PrivateSocket | undefined
  #address: NbdAddress | undefined
  #closing: Promise<void> | undefined
  #nextId = 1

  private constructor(store: ImageStore, settings: ServerSettings) {
    super()
    this.store = store
    this.#settings = settings
    this.exportName = settings.exportName
    this.readOnly = settings.readOnly || store.readOnly
    this.#export = {
      name: settings.exportName,
      description: settings.description ?? `pagecow store ${store.path}`,
      size: () => store.size,
      readOnly: this.readOnly,
      pageSize: store.pageSize,
      // Read at each query: a mark taken while the server runs is offered to the next client.
      marks: () => store.marks(),
    }
    this.#budget = new MemoryBudget(settings.memoryLimit)
    this.#connectionLimit = Math.max(MAX_PAYLOAD_BYTES, Math.floor(settings.memoryLimit / 4))
    this.#buffers = new BufferPool(Math.floor(settings.memoryLimit / 2))
    this.#server = net.createServer({ noDelay: true }, (socket) => this.#accept(socket))
  }

  /** Listen and serve `store`. Rejects with EINVAL (bad options), EBUSY (address in use) or EACCES. */
  static async listen(store: ImageStore, options: NbdServerOptions = {}): Promise<NbdServer> {
    const settings = parseServerOptions(options)
    if (!(store instanceof ImageStore)) throw new PagecowError('EINVAL', 'NBD server: store must be an open ImageStore')
    void store.size // throws ECLOSED on a closed store
    const server = new NbdServer(store, settings)
    await server.#listen()
    return server
  }

  /** The address actually listened on (the real port when 0 was asked for). */
  get address(): NbdAddress {
    return this.#address as NbdAddress
  }

  /** The NBD URI clients connect to, e.g. `nbd://127.0.0.1:10809/disk` or `nbd+unix:///disk?socket=/run/x.sock`. */
  get uri(): string {
    const address = this.address
    const name = encodeURIComponent(this.exportName)
    if ('socket' in address) return `nbd+unix:///${name}?socket=${address.socket}`
    const host = address.host.includes(':') ? `[${address.host}]` : address.host
    return `nbd://${host}:${address.port}/${name}`
  }

  /** Clients connected and served (refused ones, and those being disconnected, not counted). */
  get connections(): number {
    let n = 0
    for (const session of this.#sessions) if (!session.leaving) n++
    return n
  }

  /** Bytes of request and reply data held now for all clients (within the `memoryLimit` option). */
  get memoryUsed(): number {
    return this.#budget.used
  }

  /**
   * Stop accepting, finish requests in flight, disconnect every client, flush the store. A write
   * waiting for a frozen image is a request in flight: close() waits for its thaw (or its freeze's
   * timeout); thaw first (`store.thawAll()`) to let such writes land and close at once.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  async #listen(): Promise<void> {
    const settings = this.#settings
    if (settings.socket !== undefined) {
      // Private to the user from the moment it exists, like the FUSE mount (SPEC §8).
      this.#unixSocket = await listenPrivately(this.#server, settings.socket)
      this.#address = { socket: settings.socket }
      return
    }
    const host = settings.host ?? DEFAULT_HOST
    const port = settings.port ?? DEFAULT_PORT
    await listenOnce(this.#server, { host, port }).catch((err: unknown) => {
      throw listenError(err, `${host}:${port}`)
    })
    const bound = this.#server.address() as net.AddressInfo
    this.#address = { host, port: bound.port }
  }

  #accept(socket: net.Socket): void {
    socket.on('error', () => {}) // reported through the reader; a reset client is not the server's problem
    if (this.#closing) {
      socket.destroy()
      return
    }
    const max = this.#settings.maxConnections
    let refusal: Refusal | undefined
    if (this.connections >= max && !this.#makeRoom()) {
      if (this.#refused.size >= max) {
        socket.destroy() // a flood: no more room even to say no
        return
      }
      refusal = { reply: NBD_REP_ERR_POLICY, message: `the server is busy: ${max} clients are connected (the limit); try again later` }
    }
    const id = this.#nextId++
    const remote = socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : 'unix'
    const session: Session = {
      id,
      remote,
      socket,
      connection: undefined,
      closed: new Promise((resolve) => socket.once('close', () => resolve())),
      leaving: false,
      reason: 'client',
    }
    const set = refusal ? this.#refused : this.#sessions
    set.add(session)
    void session.closed.then(() => {
      set.delete(session)
      if (!refusal) this.emit('disconnect', { id, remote, reason: this.#closing && session.reason === 'client' ? 'shutdown' : session.reason })
      if (this.#sessions.size === 0) {
        this.#buffers.clear() // nobody to serve: the pooled memory goes back
        this.#stopIdleCheck()
      }
    })
    if (!refusal) {
      this.emit('connection', { id, remote })
      this.#startIdleCheck()
    }
    this.#serve(session, refusal).catch((err: unknown) => {
      this.emit('warning', err)
      socket.destroy()
    })
  }

  async #serve(session: Session, refusal: Refusal | undefined): Promise<void> {
    const { socket } = session
    const reader = new SocketReader(socket)
    const timer = setTimeout(() => socket.destroy(), this.#settings.handshakeTimeoutMs)
    let negotiated
    try {
      negotiated = await negotiate(socket, reader, this.#export, {
        refusal: () => (this.#closing ? { reply: NBD_REP_ERR_SHUTDOWN, message: 'the server is shutting down' } : refusal),
      })
    } catch (err) {
      if (err instanceof ConnectionClosedError) return
      throw err
    } finally {
      clearTimeout(timer)
    }
    if (!negotiated || this.#closing) {
      linger(socket)
      return
    }
    const connection = new Connection(socket, reader, this.store, negotiated, {
      buffers: this.#buffers,
      budget: this.#budget,
      connectionLimit: this.#connectionLimit,
      reads: this.#reads,
      onWarning: (err) => this.emit('warning', err),
    })
    session.connection = connection
    await connection.serve()
  }

  /**
   * The server is full: disconnect the client idle the longest, if it has been idle for the idle
   * timeout and nothing of it is under way. Whether a slot was freed.
   */
  #makeRoom(): boolean {
    const timeout = this.#settings.idleTimeoutMs
    if (timeout === 0) return false
    const now = performance.now()
    let idlest: Session | undefined
    let longest = timeout
    for (const session of this.#sessions) {
      const connection = session.connection
      if (!connection || session.leaving || connection.busy) continue
      const idle = connection.idleFor(now)
      if (idle >= longest && (idlest === undefined || idle > longest)) {
        longest = idle
        idlest = session
      }
    }
    if (!idlest) return false
    this.#disconnect(idlest, 'idle')
    return true
  }

  /** End a served session on the server's initiative; it stops counting at once. */
  #disconnect(session: Session, reason: DisconnectReason): void {
    session.leaving = true
    session.reason = reason
    if (reason === 'stalled') {
      session.socket.destroy() // what it holds is freed now; it would not read a goodbye anyway
      return
    }
    session.connection?.stop()
    const timer = setTimeout(() => session.socket.destroy(), LINGER_MS)
    timer.unref()
    session.socket.once('close', () => clearTimeout(timer))
  }

  /** Disconnect clients that hold memory and made no progress for the idle timeout. */
  #checkIdle(): void {
    const timeout = this.#settings.idleTimeoutMs
    const now = performance.now()
    for (const session of this.#sessions) {
      const connection = session.connection
      if (!connection || session.leaving) continue
      if (connection.idleFor(now) >= timeout && connection.holding) {
        const held = connection.heldBytes
        this.emit(
          'warning',
          new PagecowError('ETIMEDOUT', `NBD client ${session.id} (${session.remote}) made no progress for ${timeout} ms while holding ${held} bytes of server memory (replies it does not read or a request it does not finish); disconnected`),
        )
        this.#disconnect(session, 'stalled')
      }
    }
  }

  #startIdleCheck(): void {
    const timeout = this.#settings.idleTimeoutMs
    if (timeout === 0 || this.#idleCheck) return
    this.#idleCheck = setInterval(() => this.#checkIdle(), Math.min(MAX_IDLE_CHECK_MS, Math.ceil(timeout / 4)))
    this.#idleCheck.unref()
  }

  #stopIdleCheck(): void {
    clearInterval(this.#idleCheck)
    this.#idleCheck = undefined
  }

  async #close(): Promise<void> {
    const stopped = new Promise<void>((resolve) => this.#server.close(() => resolve()))
    const all = [...this.#sessions, ...this.#refused]
    for (const session of all) {
      if (session.connection) session.connection.stop()
      else session.socket.destroy()
    }
    const grace = setTimeout(() => {
      for (const session of all) session.socket.destroy()
    }, CLOSE_GRACE_MS)
    await Promise.all(all.map((s) => s.closed))
    clearTimeout(grace)
    await stopped
    this.#stopIdleCheck()
    this.#unixSocket?.remove()
    try {
      if (!this.store.readOnly) await this.store.flush()
    } catch (err) {
      // Closed under us by its owner: its close() flushed already.
      if (!(err instanceof PagecowError && err.code === 'ECLOSED')) throw err
    }
    this.emit('close')
  }
}

function listenOnce(server: net.Server, where: string | { host: string; port: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err)
    server.once('error', onError)
    const done = () => {
      server.off('error', onError)
      resolve()
    }
    if (typeof where === 'string') server.listen(where, done)
    else server.listen(where.port, where.host, done)
  })
}

/** End a session that never reached transmission; cut it if the client does not hang up. */
function linger(socket: net.Socket): void {
  socket.end()
  const timer = setTimeout(() => socket.destroy(), LINGER_MS)
  timer.unref()
  socket.once('close', () => clearTimeout(timer))
}
