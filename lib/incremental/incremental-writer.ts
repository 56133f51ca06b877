// Writes an incremental record by record to a sink (a file or a stream), chaining each record's
// sum on the one before, so it can be streamed: nothing needs to be known before the END record.
import { PagecowError } from '../errors.js'
import {
  encodeHeader,
  incrementalId,
  MAX_DATA_RECORD,
  recordHead,
  recordSum,
  RECORD_DATA,
  RECORD_END,
  RECORD_OP,
  RECORD_ZERO,
  SUM_BYTES,
  type IncrementalHeader,
} from './incremental-format.js'
import type { TreeOperation } from './tree-operation.js'

/** Where the bytes go; it must have taken (or copied) a buffer when its promise resolves. */
export type IncrementalSink = (bytes: Buffer) => Promise<void>

export interface IncrementalTotals {
  /** The incremental's identity (its header's sum). */
  id: string
  /** DATA, ZERO and OP records written. */
  records: number
  /** Bytes carried as data. */
  dataBytes: number
  /** Bytes said to read as zeros. */
  zeroBytes: number
  /** Bytes of the incremental itself. */
  fileBytes: number
}

export class IncrementalWriter {
  readonly #sink: IncrementalSink
  /** The size DATA and ZERO records must stay within: the image's, or the file's of the last `file` operation. */
  #size: number
  #seed: bigint
  #end = 0
  #zero: { start: number; length: number } | undefined
  readonly totals: IncrementalTotals

  private constructor(sink: IncrementalSink, size: number, seed: bigint, id: string, headerBytes: number) {
    this.#sink = sink
    this.#size = size
    this.#seed = seed
    this.totals = { id, records: 0, dataBytes: 0, zeroBytes: 0, fileBytes: headerBytes }
  }

  /** Write the header and return a writer for the records. */
  static async start(sink: IncrementalSink, header: IncrementalHeader): Promise<IncrementalWriter> {
    const { bytes, sum } = encodeHeader(header)
    await sink(bytes)
    return new IncrementalWriter(sink, header.kind === 'tree' ? 0 : header.size, sum, incrementalId(sum), bytes.length)
  }

  /** Tree incrementals: an operation; after a `file` one, its DATA and ZERO records. */
  async op(operation: TreeOperation): Promise<void> {
    await this.#flushZero()
    const json = Buffer.from(JSON.stringify(operation), 'utf8')
    await this.#record(RECORD_OP, 0, json.length, json)
    this.#size = operation.op === 'file' ? operation.size : 0
    this.#end = 0
  }

  /** The bytes at `start` (in offset order after the last record); split into records of at most 1 MiB. */
  async data(start: number, bytes: Buffer): Promise<void> {
    await this.#flushZero()
    this.#check(start, bytes.length)
    for (let done = 0; done < bytes.length; done += MAX_DATA_RECORD) {
      const piece = bytes.subarray(done, Math.min(bytes.length, done + MAX_DATA_RECORD))
      await this.#record(RECORD_DATA, start + done, piece.length, piece)
      this.totals.dataBytes += piece.length
    }
    this.#end = start + bytes.length
  }

  /** [start, start + length) reads zeros; adjacent zero ranges become one record. */
  async zero(start: number, length: number): Promise<void> {
    this.#check(start, length)
    if (this.#zero && this.#zero.start + this.#zero.length === start) this.#zero.length += length
    else {
      await this.#flushZero()
      this.#zero = { start, length }
    }
    this.#end = start + length
  }

  /** Write the END record; the incremental is complete once the sink has it. */
  async end(): Promise<IncrementalTotals> {
    await this.#flushZero()
    await this.#record(RECORD_END, this.totals.records, this.totals.dataBytes, undefined)
    this.totals.records-- // END is not a record of content
    return this.totals
  }

  #check(start: number, length: number): void {
    // The writer is fed by pagecow itself: a range out of order is a bug, not bad input.
    if (start < this.#end || length <= 0 || start + length > this.#size) {
      throw new PagecowError('EINVAL', `incremental: record [${start}, +${length}) out of order or past the size ${this.#size}`)
    }
  }

  async #flushZero(): Promise<void> {
    const z = this.#zero
    if (!z) return
    this.#zero = undefined
    await this.#record(RECORD_ZERO, z.start, z.length, undefined)
    this.totals.zeroBytes += z.length
  }

  async #record(kind: number, start: number, length: number, data: Buffer | undefined): Promise<void> {
    const head = recordHead(kind, start, length)
    this.#seed = recordSum(head, data, this.#seed)
    const tail = Buffer.alloc(SUM_BYTES)
    tail.writeBigUInt64LE(this.#seed)
    const bytes = data === undefined ? Buffer.concat([head, tail]) : Buffer.concat([head, data, tail])
    await this.#sink(bytes)
    this.totals.records++
    this.totals.fileBytes += bytes.length
  }
}
