// First-dirty events (SPEC §7, issue 12): a handler called the first time a piece of data is
// dirtied after a mark, **before** the write lands, and awaited (the write waits for it), so that a
// snapshotter can copy the old bytes first (copy-before-write) or a journal can note the file.
//
// Granularity: a tree store's event is per file (a file is what a journal or a per-file snapshot
// copies); an image store's per block of `blockSize` bytes (64 KiB by default, qemu's backup
// cluster), so one image is not one event for ever and a copy-before-write copies what a write is
// about to change, not the whole image. A write that first dirties several blocks gets one event
// per run of them. Blocks or files already changed since the mark when the handler is added are
// not first any more: no event for them.
import { PagecowError } from '../errors.js'
import type { ByteRange, WriteGate } from '../store/write-gate.js'
import { RunSet } from './run-set.js'
import { z } from 'zod'

/** What was first dirtied. */
export interface FirstDirtyEvent {
  mark: string
  /** Tree stores: the file's path (null if no name shows it now) and inode; image stores: null. */
  path: string | null
  ino: number | null
  /** Image stores: the blocks first dirtied, as bytes; tree stores: 0 and the file's size now. */
  offset: number
  length: number
}

export type FirstDirtyHandler = (event: FirstDirtyEvent) => void | Promise<void>

export const DEFAULT_EVENT_BLOCK = 64 * 1024

export const firstDirtyOptionsSchema = z.strictObject({
  /** Image stores: the event granularity in bytes, a power of two of at least the page size. Default 64 KiB. */
  blockSize: z
    .number()
    .int()
    .positive()
    .refine((n) => (n & (n - 1)) === 0, 'blockSize must be a power of two')
    .optional(),
})
export type FirstDirtyOptions = z.input<typeof firstDirtyOptionsSchema>

interface Watch {
  mark: string
  handler: FirstDirtyHandler
  blockSize: number
  /** Blocks (image) or inodes (tree) dirtied since the mark: their events are done, or not due. */
  done: RunSet
}

/** What the kind of store tells the events. */
export interface EventTarget {
  kind: 'image' | 'tree'
  /** A tree store's path of inode `key` now, or null. */
  pathOf(key: number): string | null
  /** A tree store's file size now. */
  sizeOf(key: number): number
}

export class FirstDirtyEvents {
  readonly #gate: WriteGate
  readonly #target: EventTarget
  readonly #watches = new Set<Watch>()

  constructor(gate: WriteGate, target: EventTarget) {
    this.#gate = gate
    this.#target = target
  }

  /**
   * Call `handler` for each first dirtying after mark `mark`. `changedBefore` lists the blocks'
   * byte ranges (image) or inodes (tree) already changed since the mark. Returns the function that
   * removes the handler.
   */
  add(mark: string, handler: FirstDirtyHandler, blockSize: number, changedBefore: Iterable<ByteRange | number>): () => void {
    if (typeof handler !== 'function') throw new PagecowError('EINVAL', 'onFirstDirty: the handler must be a function')
    const done = new RunSet()
    for (const c of changedBefore) {
      if (typeof c === 'number') done.add(c, c + 1)
      else done.add(Math.floor(c.start / blockSize), Math.ceil(c.end / blockSize))
    }
    const watch: Watch = { mark, handler, blockSize, done }
    this.#watches.add(watch)
    this.#gate.hook(this.#hook)
    return () => this.#remove(watch)
  }

  /** The mark went away: its handlers end. */
  dropMark(mark: string): void {
    for (const w of this.#watches) if (w.mark === mark) this.#remove(w)
  }

  #remove(watch: Watch): void {
    this.#watches.delete(watch)
    if (this.#watches.size === 0) this.#gate.hook(undefined)
  }

  readonly #hook = (key: number, range: ByteRange | undefined): Promise<void> | undefined => {
    let calls: Array<Promise<void>> | undefined
    for (const w of this.#watches) {
      for (const event of this.#firsts(w, key, range)) {
        const call = Promise.resolve()
          .then(() => w.handler(event))
          .catch((err: unknown) => {
            // Not done: the next write asks again (the write that waited fails).
            this.#undo(w, key, event)
            throw err
          })
        ;(calls ??= []).push(call)
      }
    }
    return calls && Promise.all(calls).then(() => undefined)
  }

  /** The events a write of `key` over `range` is the first for; they count as done from now. */
  #firsts(w: Watch, key: number, range: ByteRange | undefined): FirstDirtyEvent[] {
    if (this.#target.kind === 'tree') {
      if (w.done.has(key)) return []
      w.done.add(key, key + 1)
      return [{ mark: w.mark, path: this.#target.pathOf(key), ino: key, offset: 0, length: this.#target.sizeOf(key) }]
    }
    if (!range || range.end <= range.start) return []
    const first = Math.floor(range.start / w.blockSize)
    const end = Math.ceil(range.end / w.blockSize)
    const events = [...w.done.gaps(first, end)].map(([a, b]): FirstDirtyEvent => ({ mark: w.mark, path: null, ino: null, offset: a * w.blockSize, length: (b - a) * w.blockSize }))
    w.done.add(first, end)
    return events
  }

  #undo(w: Watch, key: number, event: FirstDirtyEvent): void {
    if (this.#target.kind === 'tree') w.done.delete(key, key + 1)
    else w.done.delete(event.offset / w.blockSize, (event.offset + event.length) / w.blockSize)
  }
}
