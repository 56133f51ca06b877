// What the cases share: the configuration, progress output and fixtures built once per run.
import { join } from 'node:path'
import { ImageStore } from '../../lib/index.js'
import type { Config } from './config.js'
import { makeDataFile, makeSparseFile } from './files.js'
import { scatteredPages } from './random.js'
import { scratchDir } from './scratch.js'
import { msSince, now } from './timing.js'

export class BenchContext {
  readonly config: Config
  #dataLower: string | undefined
  #sparseLower: string | undefined
  readonly #scattered = new Map<number, string>()

  constructor(config: Config) {
    this.config = config
  }

  /** Progress on stderr, so stdout holds only the report. */
  log(message: string): void {
    process.stderr.write(`  … ${message}\n`)
  }

  /** The lower with real data (config.lowerBytes of random bytes), warm in the page cache. */
  dataLower(): string {
    if (!this.#dataLower) {
      const start = now()
      const path = join(scratchDir('lower'), 'lower.img')
      makeDataFile(path, this.config.lowerBytes)
      this.log(`made a ${this.config.lowerBytes / 2 ** 20} MiB lower of random data in ${msSince(start).toFixed(0)} ms`)
      this.#dataLower = path
    }
    return this.#dataLower
  }

  /** A sparse lower of config.sparseLowerBytes (all hole). */
  sparseLower(): string {
    if (!this.#sparseLower) {
      const path = join(scratchDir('sparse'), 'sparse.img')
      makeSparseFile(path, this.config.sparseLowerBytes)
      this.#sparseLower = path
    }
    return this.#sparseLower
  }

  /**
   * A closed store over the sparse lower with `pages` scattered, never-adjacent DATA pages,
   * flushed. Built once per page count and shared by the cases that need it.
   */
  async scatteredStore(pages: number): Promise<string> {
    const cached = this.#scattered.get(pages)
    if (cached) return cached
    const start = now()
    const dir = join(scratchDir(`store${pages}`), 'store')
    const store = await ImageStore.create(dir, { lower: this.sparseLower(), autoFlushMs: 0 })
    const pageSize = store.pageSize
    const list = scatteredPages(pages, this.config.sparseLowerBytes / pageSize, 5)
    const data = Buffer.alloc(pageSize, 0xa5)
    let lastReport = now()
    for (let i = 0; i < list.length; i++) {
      data.writeUInt32LE(i, 0)
      await store.write(list[i]! * pageSize, data)
      if (Number(now() - lastReport) > 10e9) {
        this.log(`copying pages: ${i} of ${pages}`)
        lastReport = now()
      }
    }
    const copied = msSince(start)
    await store.flush()
    await store.close()
    this.log(`store with ${pages} scattered pages: copied in ${(copied / 1000).toFixed(1)} s, flushed and closed in ${(msSince(start) - copied).toFixed(0)} ms`)
    this.#scattered.set(pages, dir)
    return dir
  }
}
