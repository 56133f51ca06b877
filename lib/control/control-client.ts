// The client side of a store's control socket: how another pagecow process reaches a running
// server's store. Replies are checked before they are trusted, and an error comes back as the
// PagecowError the server threw, with its code and message.
import net from 'node:net'
import { join, resolve } from 'node:path'
import type { Stats } from 'node:fs'
import { fromSystemError, PagecowError } from '../errors.js'
import * as fs from '../fs.js'
import type { ControlCall, ControlStream } from './control-method.js'
import { CONTROL_SOCKET_FILE } from './control-socket-path.js'
import { LineSplitter, LineTooLongError } from './line-splitter.js'
import { encodeLine, knownCode, MAX_REPLY_BYTES, replySchema, type ControlReply } from './protocol.js'
import { socketAddress } from './socket-address.js'

/** What a request waits for: each line the server sends for its id, and the connection's end. */
interface Pending {
  line(reply: ControlReply): void
  failed(err: PagecowError): void
}

export class ControlClient {
  readonly #socket: net.Socket
  readonly #pending = new Map<number, Pending>()
  readonly #splitter = new LineSplitter(MAX_REPLY_BYTES)
  #nextId = 1
  #gone: PagecowError | undefined

  private constructor(socket: net.Socket) {
    this.#socket = socket
    socket.on('data', (chunk: Buffer) => this.#read(chunk))
    socket.on('error', (err) => this.#fail(fromSystemError(err, 'control: the connection to the server failed')))
    socket.on('close', () => this.#fail(new PagecowError('EIO', 'control: the server closed the connection before answering (did it stop?)')))
  }

  /**
   * Connect to the control socket of the store in `dir`. Undefined when no server can be reached
   * there: no socket, a stale one a killed server left, or one this user may not use (its store
   * is then opened as it always was). EUNSAFE when STORE/control.sock is not a socket made by the
   * store's owner (or root): it is never trusted, as no store file is.
   */
  static async connect(dir: string): Promise<ControlClient | undefined> {
    const store = resolve(dir)
    const path = join(store, CONTROL_SOCKET_FILE)
    let st: Stats
    let owner: Stats
    try {
      st = fs.lstatSync(path)
      owner = fs.statSync(store)
    } catch {
      return undefined
    }
    const trusted = (uid: number) => uid === owner.uid || uid === 0
    if (!st.isSocket()) throw new PagecowError('EUNSAFE', `${path} is not a socket; pagecow refuses a control socket it did not make (remove it)`)
    if (!trusted(st.uid)) throw new PagecowError('EUNSAFE', `${path} is owned by uid ${st.uid}, not by uid ${owner.uid}, the owner of ${store}; pagecow never talks to it (remove it)`)
    const address = socketAddress(store, CONTROL_SOCKET_FILE)
    let socket: net.Socket
    try {
      socket = await new Promise<net.Socket>((resolvePromise, reject) => {
        const s = net.connect(address.path)
        s.once('connect', () => {
          s.off('error', reject)
          resolvePromise(s)
        })
        s.once('error', reject)
      })
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      // Nobody listens (a killed server's socket), it went away meanwhile, or it is not ours to use.
      if (code === 'ECONNREFUSED' || code === 'ENOENT' || code === 'EACCES' || code === 'EPERM') return undefined
      throw fromSystemError(err, `control: connecting to ${path}`)
    } finally {
      address.close()
    }
    const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd
    const server = typeof fd === 'number' ? fs.peerCredentials(fd) : undefined
    if (!server || !(trusted(server.uid) || server.uid === process.geteuid?.())) {
      socket.destroy()
      throw new PagecowError('EUNSAFE', `${path} is served by uid ${server?.uid ?? 'unknown'}, neither the owner of ${store} nor root; pagecow never talks to it`)
    }
    return new ControlClient(socket)
  }

  /** Ask `method` of the server; its result, checked, or its error re-thrown. */
  call<P, R>(method: ControlCall<P, R>, params: P): Promise<R> {
    return new Promise<R>((resolvePromise, reject) => {
      const id = this.#send(method.name, params, {
        line: (reply) => {
          this.#pending.delete(id)
          if ('error' in reply) return reject(new PagecowError(knownCode(reply.error.code), reply.error.message))
          if (!('result' in reply)) return reject(new PagecowError('EIO', `control: the server answered ${method.name} with a stream`))
          const checked = method.result.safeParse(reply.result)
          if (!checked.success) return reject(new PagecowError('EIO', `control: the server's reply to ${method.name} is not what this pagecow expects (another version?)`))
          resolvePromise(checked.data)
        },
        failed: (err) => reject(err),
      })
    })
  }

  /** Events of `method` from the server until it ends the stream; breaking off closes the connection. */
  async *stream<P, E>(method: ControlStream<P, E>, params: P): AsyncGenerator<E, void, undefined> {
    const queue: Array<ControlReply | PagecowError> = []
    let wake: (() => void) | undefined
    const push = (item: ControlReply | PagecowError) => {
      queue.push(item)
      wake?.()
    }
    const id = this.#send(method.name, params, { line: push, failed: push })
    try {
      for (;;) {
        const item = queue.shift()
        if (item === undefined) {
          await new Promise<void>((r) => (wake = r))
          wake = undefined
          continue
        }
        if (item instanceof PagecowError) throw item
        if ('error' in item) throw new PagecowError(knownCode(item.error.code), item.error.message)
        if ('end' in item) return
        if (!('event' in item)) throw new PagecowError('EIO', `control: the server answered ${method.name} with a single reply, not a stream`)
        const checked = method.event.safeParse(item.event)
        if (!checked.success) throw new PagecowError('EIO', `control: an event of ${method.name} is not what this pagecow expects (another version?)`)
        yield checked.data
      }
    } finally {
      this.#pending.delete(id)
    }
  }

  /** Hang up (a stream still running on the server stops). */
  close(): void {
    this.#socket.destroy()
  }

  #send(method: string, params: unknown, pending: Pending): number {
    const id = this.#nextId++
    if (this.#gone) {
      pending.failed(this.#gone)
      return id
    }
    this.#pending.set(id, pending)
    this.#socket.write(encodeLine({ id, method, params }))
    return id
  }

  #read(chunk: Buffer): void {
    let lines: string[]
    try {
      lines = this.#splitter.push(chunk)
    } catch (err) {
      if (!(err instanceof LineTooLongError)) throw err
      this.#fail(new PagecowError('EIO', `control: the server sent a reply line longer than ${MAX_REPLY_BYTES} bytes`))
      this.#socket.destroy()
      return
    }
    for (const line of lines) {
      let reply: ControlReply
      try {
        const checked = replySchema.safeParse(JSON.parse(line))
        if (!checked.success) throw checked.error
        reply = checked.data
      } catch {
        this.#fail(new PagecowError('EIO', 'control: the server sent a malformed reply line'))
        this.#socket.destroy()
        return
      }
      if (reply.id === null) {
        // About no request in particular (we were refused, or it could not read us): about all.
        this.#fail(new PagecowError(knownCode((reply as { error: { code: string } }).error.code), (reply as { error: { message: string } }).error.message))
        continue
      }
      this.#pending.get(reply.id)?.line(reply)
    }
  }

  #fail(err: PagecowError): void {
    this.#gone ??= err
    const all = [...this.#pending.values()]
    this.#pending.clear()
    for (const p of all) p.failed(err)
  }
}
