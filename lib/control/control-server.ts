// The control socket of a served store (SPEC §8): STORE/control.sock, a Unix socket only the
// store's owner can use, through which other pagecow processes reach the store's writer while a
// server (`pagecow mount`, `pagecow serve`, a library user) holds it. It never listens on the
// network, is mode 0600 from the moment it exists, and the server checks each peer's uid too.
import net from 'node:net'
import { z } from 'zod'
import { parseWith, PagecowError, type ErrorCode } from '../errors.js'
import * as fs from '../fs.js'
import { listenPrivately, type PrivateSocket } from '../nbd/private-socket.js'
import { adoptStoreFile, ownerOfDirectory } from '../store/store-file.js'
import type { AnyStore } from '../open-store.js'
import { ControlConnection } from './control-connection.js'
import { CONTROL_SOCKET_FILE, controlSocketPath } from './control-socket-path.js'
import { encodeLine } from './protocol.js'
import { socketAddress, type SocketAddress } from './socket-address.js'

const optionsSchema = z.strictObject({
  /** Peers served at once; one more is told EBUSY and hung up on. Default 64. */
  maxConnections: z.number().int().min(1).max(4096).optional(),
  /** A peer with nothing in flight and no stream open for this long is hung up on; 0 never. Default 60 000. */
  idleTimeoutMs: z.number().int().min(0).max(2 ** 31 - 1).optional(),
})

export type ControlServerOptions = z.input<typeof optionsSchema>

export const CONTROL_DEFAULTS: Required<ControlServerOptions> = { maxConnections: 64, idleTimeoutMs: 60_000 }

/** `fd` of a connected socket's handle (libuv's, which Node does not document but keeps). */
function socketFd(socket: net.Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd
  return typeof fd === 'number' ? fd : -1
}

export class ControlServer {
  /** The socket's path: STORE/control.sock. */
  readonly path: string
  readonly #store: AnyStore
  readonly #options: Required<ControlServerOptions>
  readonly #uid = process.geteuid?.() ?? 0
  readonly #server: net.Server
  readonly #connections = new Set<ControlConnection>()
  #socket: PrivateSocket | undefined
  #address: SocketAddress | undefined
  #closing: Promise<void> | undefined
  /** The store directory's owner, who may use the socket too. */
  #owner = -1

  private constructor(store: AnyStore, options: Required<ControlServerOptions>) {
    this.path = controlSocketPath(store.path)
    this.#store = store
    this.#options = options
    this.#server = net.createServer({ pauseOnConnect: true }, (socket) => this.#accept(socket))
  }

  /**
   * Serve `store` (open for writing: its writer is what the socket reaches) on STORE/control.sock.
   * A stale socket a killed server left is replaced. Errors: EROFS (a read-only store), EBUSY
   * (something else is at the path), EINVAL (a bad option), EACCES, EIO.
   */
  static async listen(store: AnyStore, options: ControlServerOptions = {}): Promise<ControlServer> {
    const opts = { ...CONTROL_DEFAULTS, ...parseWith(optionsSchema, options, 'ControlServer.listen') }
    if (store.readOnly) throw new PagecowError('EROFS', `control: ${store.path} is open read-only; only the store's writer serves its control socket`)
    const server = new ControlServer(store, opts)
    const address = socketAddress(store.path, CONTROL_SOCKET_FILE)
    try {
      server.#socket = await listenPrivately(server.#server, address.path)
    } catch (err) {
      address.close()
      throw err
    }
    try {
      // Root serving a user's store: the socket is the user's, as every store file is (and the
      // store's next open checks it so).
      adoptStoreFile(address.path, store.path)
      server.#owner = ownerOfDirectory(store.path).uid
    } catch (err) {
      await server.close()
      throw err
    }
    server.#address = address
    return server
  }

  /** Peers connected now. */
  get connections(): number {
    return this.#connections.size
  }

  /** Stop listening, remove the socket, end streams, let requests in flight finish. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#socket?.remove()
      const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()))
      await Promise.all([...this.#connections].map((c) => c.close()))
      await closed
      this.#address?.close()
    })()
    return this.#closing
  }

  #accept(socket: net.Socket): void {
    socket.on('error', () => {})
    if (this.#closing) return void socket.destroy()
    const refuse = (code: ErrorCode, message: string) => {
      socket.resume() // to see the peer's end: what it sends is dropped
      socket.end(encodeLine({ id: null, error: { code, message } }))
      setTimeout(() => socket.destroy(), 1000)
    }
    let peer: fs.PeerCredentials
    try {
      peer = fs.peerCredentials(socketFd(socket))
    } catch {
      return void socket.destroy()
    }
    // Owner-only: the socket's mode keeps others from connecting; this catches a mode loosened
    // since. The store's owner and the server's user may; root too: it can open the store's files
    // (and this process) anyway.
    if (peer.uid !== this.#uid && peer.uid !== this.#owner && peer.uid !== 0) {
      return refuse('EACCES', `control: the control socket of ${this.#store.path} serves its owner (uid ${this.#owner}) and uid ${this.#uid} only; you are uid ${peer.uid}`)
    }
    if (this.#connections.size >= this.#options.maxConnections) {
      return refuse('EBUSY', `control: ${this.#store.path} already serves ${this.#options.maxConnections} control connections; try again later`)
    }
    const connection = new ControlConnection(socket, this.#store, this.#options.idleTimeoutMs)
    this.#connections.add(connection)
    void connection.closed.then(() => this.#connections.delete(connection))
    socket.resume()
  }
}
