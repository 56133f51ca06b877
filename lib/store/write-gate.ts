// The one place every change of a file's data passes before it lands: per-file freeze (writers
// wait until thaw, SPEC §7) and the hook of the first-dirty event (an async handler awaited before
// a write lands). Keys are numbers: an image store's one file, a tree store's inode.
import { PagecowError } from '../errors.js'

/**
 * Called before a write to file `key` lands, while a hook is set: undefined lets the write go on
 * at once; a promise makes it (and every other write to that file meanwhile) wait for it. A
 * rejection fails the writes that waited; the next write asks again. While a hook is set every
 * write takes the slow path (an async call), so it should answer undefined quickly when it has
 * nothing to do. A store's close() waits for the handlers running.
 */
export type WriteHook = (key: number, range: ByteRange | undefined) => Promise<void> | undefined

/** The bytes a write changes, [start, end), when the writer says (image stores do). */
export interface ByteRange {
  start: number
  end: number
}

/** The longest freeze timeout: what setTimeout can wait (about 24.8 days). */
export const MAX_FREEZE_TIMEOUT_MS = 2 ** 31 - 1

/** One frozen file, as plain data. */
export interface FreezeState {
  key: number
  /** A writer waits at most this long (from when it started waiting), then fails with EFROZEN; undefined: for ever. */
  timeoutMs: number | undefined
  /** When freeze() was called (ms since the epoch). */
  since: number
  /** Writers waiting for the thaw now. */
  waiting: number
}

interface Waiter {
  resolve(): void
  reject(err: unknown): void
  timer: NodeJS.Timeout | undefined
}

interface Freeze {
  timeoutMs: number | undefined
  since: number
  readonly waiters: Set<Waiter>
}

export class WriteGate {
  readonly #frozen = new Map<number, Freeze>()
  #hook: WriteHook | undefined
  /** The hook's promise per file while it runs: later writers wait on it instead of calling again. */
  readonly #hooking = new Map<number, Promise<void>>()
  /** Writers let through the slow path whose work has not finished (async work only stays here). */
  readonly #running = new Map<number, number>()
  /** freeze() calls waiting for a file's running writers to finish. */
  readonly #quiet = new Map<number, Array<() => void>>()
  /** Writers in the slow path (waiting or running): drain() waits for none. */
  #inGate = 0
  #drained: Array<() => void> = []
  /** describe(key): how errors name a file ("the image", "/etc/hosts"). */
  readonly #describe: (key: number) => string

  constructor(describe: (key: number) => string = (key) => `file ${key}`) {
    this.#describe = describe
  }

  /**
   * True when a write may land at once without asking: nothing frozen, no hook. The fast path of
   * every writer: `if (gate.open) write() else await gate.through(key, write)` (no await, no
   * allocation). Work done on the fast path must be synchronous (it always is: the page store's
   * writes are), so no write is ever half done when freeze() looks.
   */
  get open(): boolean {
    return this.#frozen.size === 0 && this.#hook === undefined
  }

  /**
   * Run `work` (a change of file `key`'s data) once the file may be written: after any thaw it
   * waits for, and after the hook's promise for that file. `work` runs synchronously after the
   * last check, so a freeze cannot slip in between; if it returns a promise, freeze() of the file
   * waits for it. Rejects with EFROZEN when the freeze's timeout passes first.
   */
  async through<T>(key: number, work: () => T, range?: ByteRange | (() => ByteRange)): Promise<Awaited<T>> {
    this.#inGate++
    try {
      for (;;) {
        const freeze = this.#frozen.get(key)
        if (freeze) {
          await this.#wait(key, freeze)
          continue
        }
        // A range that depends on the file (a truncation's) is taken again after every wait.
        const hooked = this.#hooked(key, typeof range === 'function' ? range() : range)
        if (hooked) {
          await hooked
          continue // frozen meanwhile? then wait for that thaw first
        }
        return await this.#run(key, work)
      }
    } finally {
      if (--this.#inGate === 0) for (const done of this.#drained.splice(0)) done()
    }
  }

  /**
   * Freeze file `key`: writers wait from now on. Resolves once no write of the file is under way
   * (every write that got through before has landed). EBUSY if it is frozen already.
   */
  async freeze(key: number, timeoutMs?: number): Promise<void> {
    if (this.#frozen.has(key)) throw new PagecowError('EBUSY', `freeze: ${this.#describe(key)} is frozen already; thaw it first`)
    this.#frozen.set(key, { timeoutMs, since: Date.now(), waiters: new Set() })
    if ((this.#running.get(key) ?? 0) > 0) {
      await new Promise<void>((resolve) => {
        const list = this.#quiet.get(key)
        if (list) list.push(resolve)
        else this.#quiet.set(key, [resolve])
      })
    }
  }

  /** Let file `key`'s writers go on. EINVAL if it is not frozen. */
  thaw(key: number): void {
    const freeze = this.#frozen.get(key)
    if (!freeze) throw new PagecowError('EINVAL', `thaw: ${this.#describe(key)} is not frozen`)
    this.#frozen.delete(key)
    for (const waiter of freeze.waiters) {
      clearTimeout(waiter.timer)
      waiter.resolve()
    }
  }

  /** Thaw every frozen file; returns how many there were. */
  thawAll(): number {
    const keys = [...this.#frozen.keys()]
    for (const key of keys) this.thaw(key)
    return keys.length
  }

  isFrozen(key: number): boolean {
    return this.#frozen.has(key)
  }

  /** The frozen files, in the order they were frozen. */
  frozen(): FreezeState[] {
    return [...this.#frozen].map(([key, f]) => ({ key, timeoutMs: f.timeoutMs, since: f.since, waiting: f.waiters.size }))
  }

  /**
   * Set the hook called before each write lands (undefined removes it). One hook per gate: the
   * first-dirty events of marks decide inside it which writes are firsts.
   */
  hook(fn: WriteHook | undefined): void {
    this.#hook = fn
  }

  /** Resolves once no writer is waiting or running in the slow path (after a thawAll(), say). */
  drain(): Promise<void> {
    if (this.#inGate === 0) return Promise.resolve()
    return new Promise((resolve) => this.#drained.push(resolve))
  }

  #wait(key: number, freeze: Freeze): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, timer: undefined }
      freeze.waiters.add(waiter)
      const { timeoutMs } = freeze
      if (timeoutMs === undefined) return
      waiter.timer = setTimeout(() => {
        freeze.waiters.delete(waiter)
        reject(new PagecowError('EFROZEN', `${this.#describe(key)} is frozen and this write waited the freeze's ${timeoutMs} ms timeout; it did not land (retry after thaw)`))
      }, timeoutMs)
    })
  }

  /** The hook's promise for `key`, if a write must wait for it (shared by every writer meanwhile). */
  #hooked(key: number, range: ByteRange | undefined): Promise<void> | undefined {
    const running = this.#hooking.get(key)
    if (running) return running
    const hook = this.#hook
    if (!hook) return undefined
    let result: Promise<void> | undefined
    try {
      result = hook(key, range)
    } catch (err) {
      return Promise.reject(hookError(key, err, this.#describe))
    }
    if (result === undefined) return undefined
    const describe = this.#describe
    const settled = Promise.resolve(result).then(
      () => {
        this.#hooking.delete(key)
      },
      (err: unknown) => {
        this.#hooking.delete(key)
        throw hookError(key, err, describe)
      },
    )
    this.#hooking.set(key, settled)
    return settled
  }

  async #run<T>(key: number, work: () => T): Promise<Awaited<T>> {
    const result = work()
    if (!(result instanceof Promise)) return result as Awaited<T>
    this.#running.set(key, (this.#running.get(key) ?? 0) + 1)
    try {
      return (await result) as Awaited<T>
    } finally {
      const left = this.#running.get(key)! - 1
      if (left > 0) this.#running.set(key, left)
      else {
        this.#running.delete(key)
        for (const resolve of this.#quiet.get(key)?.splice(0) ?? []) resolve()
        this.#quiet.delete(key)
      }
    }
  }
}

function hookError(key: number, err: unknown, describe: (key: number) => string): PagecowError {
  if (err instanceof PagecowError) return err
  return new PagecowError('EIO', `the write hook failed for ${describe(key)}, so the write did not land: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
}

/** The gate of each open store, for the parts of the library that hook writes (and tests). */
const GATES = new WeakMap<object, WriteGate>()

export function registerWriteGate(store: object, gate: WriteGate): void {
  GATES.set(store, gate)
}

/** The write gate of an open store (an ImageStore or a TreeStore). Not part of the package's API. */
export function writeGateOf(store: object): WriteGate {
  const gate = GATES.get(store)
  if (!gate) throw new PagecowError('EINVAL', 'not a store')
  return gate
}
