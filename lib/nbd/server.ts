// The NBD server: one ImageStore exported to every client, over TCP (loopback by default,
// SPEC §8) or a Unix socket. All connections share the store, so they see one content.
import { EventEmitter } from 'node:events'
import { chmodSync, lstatSync, unlinkSync } from 'node:fs'
import net from 'node:net'
import { ImageStore, PagecowError } from '../index.js'
import { BufferPool } from './buffer-pool.js'
import { Connection } from './connection.js'
import { negotiate, type ExportDescription, type Refusal } from './handshake.js'
import { DEFAULT_HOST, DEFAULT_PORT, parseServerOptions, type NbdServerOptions, type ServerSettings } from './options.js'
import { NBD_REP_ERR_POLICY, NBD_REP_ERR_SHUTDOWN } from './protocol.js'
import { ConnectionClosedError, SocketReader } from './socket-reader.js'

export type { NbdServerOptions } from './options.js'

/** How long close() waits for clients to take their last replies before cutting them off. */
const CLOSE_GRACE_MS = 5000
/** How long a session that ended in the handshake waits for the client to hang up. */
const LINGER_MS = 2000

interface Session {
  socket: net.Socket
  connection: Connection | undefined
  closed: Promise<void>
}

/** Where the server listens. */
export type NbdAddress = { host: string; port: number } | { socket: string }

/**
 * An NBD server over an open ImageStore. Start it with `NbdServer.listen(store, options)`;
 * `close()` stops accepting, lets requests in flight finish, disconnects the clients and
 * flushes the store (the store itself stays open: its owner closes it).
 *
 * Events: `'warning'` (an Error the operator should see: a store failure while serving),
 * `'connection'` and `'disconnect'` (with `{ id, remote }`), `'close'`.
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
  readonly #buffers = new BufferPool()
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
    }
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

  /** Clients connected and served (refused ones not counted). */
  get connections(): number {
    return this.#sessions.size
  }

  /** Stop accepting, finish requests in flight, disconnect every client, flush the store. */
  close(): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  async #listen(): Promise<void> {
    const settings = this.#settings
    if (settings.socket !== undefined) {
      const path = settings.socket
      try {
        await listenOnce(this.#server, path)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || (await someoneListens(path))) throw listenError(err, path)
        unlinkSync(path) // a stale socket left by a server that died
        await listenOnce(this.#server, path).catch((e: unknown) => {
          throw listenError(e, path)
        })
      }
      chmodSync(path, 0o600) // private to the user, like the FUSE mount (SPEC §8)
      this.#address = { socket: path }
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
    if (this.#sessions.size >= max) {
      if (this.#refused.size >= max) {
        socket.destroy() // a flood: no more room even to say no
        return
      }
      refusal = { reply: NBD_REP_ERR_POLICY, message: `the server is busy: ${max} clients are connected (the limit); try again later` }
    }
    const id = this.#nextId++
    const remote = socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : 'unix'
    const session: Session = {
      socket,
      connection: undefined,
      closed: new Promise((resolve) => socket.once('close', () => resolve())),
    }
    const set = refusal ? this.#refused : this.#sessions
    set.add(session)
    void session.closed.then(() => {
      set.delete(session)
      if (!refusal) this.emit('disconnect', { id, remote })
    })
    if (!refusal) this.emit('connection', { id, remote })
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
      onWarning: (err) => this.emit('warning', err),
    })
    session.connection = connection
    await connection.serve()
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

/** Whether a live server answers on the Unix socket `path`. */
function someoneListens(path: string): Promise<boolean> {
  try {
    if (!lstatSync(path).isSocket()) return Promise.resolve(true) // not ours to remove
  } catch {
    return Promise.resolve(false)
  }
  return new Promise((resolve) => {
    const probe = net.connect(path)
    probe.once('connect', () => {
      probe.destroy()
      resolve(true)
    })
    probe.once('error', () => resolve(false))
  })
}

function listenError(err: unknown, where: string): PagecowError {
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'EADDRINUSE') return new PagecowError('EBUSY', `cannot listen on ${where}: the address is in use (another server?)`, { cause: err })
  if (code === 'EACCES' || code === 'EPERM') return new PagecowError('EACCES', `cannot listen on ${where}: permission denied`, { cause: err })
  if (code === 'ENOENT') return new PagecowError('ENOENT', `cannot listen on ${where}: the directory does not exist`, { cause: err })
  return new PagecowError('EIO', `cannot listen on ${where}: ${(err as Error).message}`, { cause: err })
}

/** End a session that never reached transmission; cut it if the client does not hang up. */
function linger(socket: net.Socket): void {
  socket.end()
  const timer = setTimeout(() => socket.destroy(), LINGER_MS)
  timer.unref()
  socket.once('close', () => clearTimeout(timer))
}
