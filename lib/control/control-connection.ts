// One peer of a control server: reads its request lines, serves them in order, writes the
// replies. Nothing a peer sends can hurt the server or the store: garbage and bad requests get
// an error line, an over-long line ends the connection, a peer that vanishes mid-request only
// loses its reply, and one that stops reading a stream is cut off rather than buffered for.
import type net from 'node:net'
import { fromSystemError, parseWith, PagecowError } from '../errors.js'
import type { AnyStore } from '../open-store.js'
import { CONTROL_METHODS } from './method-table.js'
import { LineSplitter, LineTooLongError } from './line-splitter.js'
import { encodeLine, MAX_REQUEST_BYTES, requestSchema } from './protocol.js'

/** Request lines read ahead of the one being served; past it, reading pauses. */
const MAX_QUEUED_LINES = 32
/** Reply bytes a peer may leave unread while a stream sends it more; past it, it is cut off. */
const MAX_UNREAD_STREAM_BYTES = 4 * 1024 * 1024

export class ControlConnection {
  readonly #socket: net.Socket
  readonly #store: AnyStore
  readonly #splitter = new LineSplitter(MAX_REQUEST_BYTES)
  readonly #queue: string[] = []
  /** Active streams by request id: their stop functions. */
  readonly #streams = new Map<number, () => void>()
  #serving: Promise<void> | undefined
  /** The server is closing: no new request is taken, the one being served finishes. */
  #draining = false
  #closed = false
  readonly closed: Promise<void>

  constructor(socket: net.Socket, store: AnyStore, idleTimeoutMs: number) {
    this.#socket = socket
    this.#store = store
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()))
    socket.on('error', () => {}) // a peer that vanished: 'close' follows
    socket.once('close', () => this.#end())
    socket.on('data', (chunk: Buffer) => this.#read(chunk))
    if (idleTimeoutMs > 0) {
      socket.setTimeout(idleTimeoutMs)
      // A peer with a request in flight or a stream open is waiting, not idle.
      socket.on('timeout', () => {
        if (this.#serving === undefined && this.#streams.size === 0 && this.#queue.length === 0) socket.destroy()
      })
    }
  }

  /** The server is closing: end the streams, finish the request being served, then hang up. */
  async close(): Promise<void> {
    this.#draining = true
    this.#queue.length = 0
    this.#socket.resume()
    for (const id of [...this.#streams.keys()]) {
      this.#stopStream(id)
      this.#send({ id, end: true })
    }
    await this.#serving
    this.#socket.end()
    const timer = setTimeout(() => this.#socket.destroy(), 1000)
    await this.closed
    clearTimeout(timer)
  }

  #read(chunk: Buffer): void {
    if (this.#closed || this.#draining) return // hanging up: what else it sends is read and dropped, so its end is seen
    let lines: string[]
    try {
      lines = this.#splitter.push(chunk)
    } catch (err) {
      if (!(err instanceof LineTooLongError)) throw err
      this.#send({ id: null, error: { code: 'EINVAL', message: `control: a request line longer than ${MAX_REQUEST_BYTES} bytes; the connection is closed` } })
      this.#hangUp()
      return
    }
    for (const line of lines) if (line.trim() !== '') this.#queue.push(line)
    if (this.#queue.length >= MAX_QUEUED_LINES) this.#socket.pause()
    this.#kick()
  }

  #kick(): void {
    if (this.#serving !== undefined || this.#queue.length === 0 || this.#closed || this.#draining) return
    this.#serving = this.#serveQueue().finally(() => {
      this.#serving = undefined
      this.#kick()
    })
  }

  async #serveQueue(): Promise<void> {
    while (!this.#closed && !this.#draining) {
      const line = this.#queue.shift()
      if (line === undefined) break
      await this.#serve(line)
      // A peer that does not read its replies gets no more served until it does.
      if (this.#socket.writableNeedDrain) await new Promise<void>((resolve) => {
        this.#socket.once('drain', resolve)
        this.#socket.once('close', resolve)
      })
      if (this.#queue.length < MAX_QUEUED_LINES && !this.#closed && !this.#draining) this.#socket.resume()
    }
  }

  async #serve(line: string): Promise<void> {
    let raw: unknown
    try {
      raw = JSON.parse(line)
    } catch {
      this.#send({ id: null, error: { code: 'EINVAL', message: `control: a request must be one JSON object per line; got ${JSON.stringify(line.slice(0, 60))}${line.length > 60 ? '…' : ''}` } })
      return
    }
    const rawId = (raw as { id?: unknown } | null)?.id
    const id = typeof rawId === 'number' && Number.isSafeInteger(rawId) && rawId >= 0 ? rawId : null
    try {
      const request = parseWith(requestSchema, raw, 'control request')
      const method = CONTROL_METHODS.get(request.method)
      if (!method) throw new PagecowError('EINVAL', `control: unknown method "${request.method}"; this server answers ${[...CONTROL_METHODS.keys()].join(', ')}`)
      const params: unknown = parseWith(method.params, request.params ?? {}, request.method)
      if (method.type === 'call') {
        const result: unknown = await method.run(this.#store, params)
        this.#send({ id: request.id, result: result ?? null })
        return
      }
      if (this.#streams.has(request.id)) throw new PagecowError('EINVAL', `control: request id ${request.id} is already a stream on this connection`)
      this.#streams.set(request.id, method.start(this.#store, params, (event) => this.#sendEvent(request.id, event)))
    } catch (err) {
      const e = err instanceof PagecowError ? err : fromSystemError(err, 'control')
      this.#send({ id, error: { code: e.code, message: e.message } })
    }
  }

  #sendEvent(id: number, event: unknown): void {
    if (this.#socket.writableLength > MAX_UNREAD_STREAM_BYTES) {
      // The peer stopped reading: events are not held for it without bound, nor silently dropped.
      this.#hangUp()
      return
    }
    this.#send({ id, event })
  }

  #send(reply: object): void {
    if (this.#closed || this.#socket.destroyed) return
    this.#socket.write(encodeLine(reply))
  }

  #stopStream(id: number): void {
    const stop = this.#streams.get(id)
    this.#streams.delete(id)
    stop?.()
  }

  /** Stop reading and close once what was written is sent. */
  #hangUp(): void {
    this.#end()
    this.#socket.resume()
    this.#socket.end()
    setTimeout(() => this.#socket.destroy(), 1000)
  }

  #end(): void {
    if (this.#closed) return
    this.#closed = true
    this.#queue.length = 0
    for (const id of [...this.#streams.keys()]) this.#stopStream(id)
  }
}
