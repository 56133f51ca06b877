// Reads an incremental back, checking as it goes: the header's sum and schema, then every
// record's chained sum, its order and bounds, and an END record with the right totals and
// nothing after it. A damaged or truncated file is ECORRUPT at the first record that shows it.
import * as fs from '../fs.js'
import { fromSystemError } from '../errors.js'
import {
  corrupt,
  decodeHeader,
  incrementalId,
  MAX_DATA_RECORD,
  PREAMBLE_BYTES,
  recordSum,
  RECORD_DATA,
  RECORD_END,
  RECORD_HEAD_BYTES,
  RECORD_OP,
  RECORD_ZERO,
  SUM_BYTES,
  type IncrementalHeader,
  type IncrementalRecord,
} from './incremental-format.js'
import { MAX_OP_BYTES, TREE_PHASES, treeOperationSchema, treePhaseOf, type TreeOperation } from './tree-operation.js'

const READ_BLOCK = 4 * 1024 * 1024

export class IncrementalReader {
  readonly path: string
  readonly header: IncrementalHeader
  /** The incremental's identity (its header's sum). */
  readonly id: string
  readonly #fd: number
  readonly #seed: bigint
  readonly #recordsAt: number

  private constructor(path: string, fd: number, header: IncrementalHeader, seed: bigint, recordsAt: number) {
    this.path = path
    this.#fd = fd
    this.header = header
    this.#seed = seed
    this.id = incrementalId(seed)
    this.#recordsAt = recordsAt
  }

  /** Open `path` and check its header. */
  static open(path: string): IncrementalReader {
    let fd: number
    try {
      fd = fs.openSync(path, fs.constants.O_RDONLY)
    } catch (err) {
      throw fromSystemError(err, `opening the incremental ${path}`)
    }
    try {
      if (!fs.fstatSync(fd).isFile()) throw Object.assign(new Error(`${path} is not a regular file`), { code: 'EINVAL' })
      const pre = readAt(fd, PREAMBLE_BYTES, 0)
      const { header, sum, bytes } = decodeHeader(path, pre, (length) => readAt(fd, length, PREAMBLE_BYTES))
      return new IncrementalReader(path, fd, header, sum, bytes)
    } catch (err) {
      fs.closeSync(fd)
      throw fromSystemError(err, `reading the incremental ${path}`)
    }
  }

  /**
   * Every record in order, each checked before it is handed out (a record's `data` is only valid
   * until the next one). The generator throws ECORRUPT where the file shows damage; it returns
   * only after the END record has been checked and nothing follows it.
   */
  *records(): Generator<IncrementalRecord> {
    const where = this.path
    const tree = this.header.kind === 'tree'
    // The size DATA and ZERO records stay within: the image's, or the file's of the last `file` operation.
    let size = this.header.kind === 'tree' ? 0 : this.header.size
    let inFile = !tree
    let phase = 0
    let seed = this.#seed
    let end = 0
    let records = 0
    let dataBytes = 0
    const buffer = new BufferedFile(this.#fd, this.#recordsAt)
    for (;;) {
      const head = buffer.take(RECORD_HEAD_BYTES)
      if (head.length < RECORD_HEAD_BYTES) throw corrupt(where, `it ends after ${records} records, without its END record (cut short?)`)
      const kind = head[0]!
      const start = toSafe(head.readBigUInt64LE(1))
      const length = toSafe(head.readBigUInt64LE(9))
      const headCopy = Buffer.from(head)
      if (kind === RECORD_END) {
        const tail = buffer.take(SUM_BYTES)
        if (tail.length < SUM_BYTES || tail.readBigUInt64LE() !== recordSum(headCopy, undefined, seed)) throw corrupt(where, 'its END record does not match its checksum')
        if (start !== records || length !== dataBytes) throw corrupt(where, `its END record counts ${start} records and ${length} data bytes, it holds ${records} and ${dataBytes}`)
        if (buffer.take(1).length !== 0) throw corrupt(where, 'bytes follow its END record')
        return
      }
      const known = kind === RECORD_DATA || kind === RECORD_ZERO || (tree && kind === RECORD_OP)
      if (!known) throw corrupt(where, `record ${records} has an unknown kind ${kind}`)
      const limit = kind === RECORD_OP ? MAX_OP_BYTES : MAX_DATA_RECORD
      if (kind !== RECORD_ZERO && (length === undefined || length > limit)) throw corrupt(where, `record ${records} carries ${String(length)} bytes (at most ${limit})`)
      const payload = kind === RECORD_ZERO ? undefined : buffer.take(length!)
      if (payload !== undefined && payload.length < length!) throw corrupt(where, `it ends inside record ${records} (cut short?)`)
      const tail = buffer.take(SUM_BYTES)
      if (tail.length < SUM_BYTES) throw corrupt(where, `it ends inside record ${records} (cut short?)`)
      const sum = recordSum(headCopy, payload, seed)
      if (tail.readBigUInt64LE() !== sum) throw corrupt(where, `record ${records} does not match its checksum`)
      seed = sum
      records++
      if (kind === RECORD_OP) {
        // Checked after the sum: a damaged record is reported as damage, not as a bad operation.
        const op = decodeOperation(where, records - 1, payload!)
        const opPhase = TREE_PHASES.indexOf(treePhaseOf(op))
        if (opPhase < phase) throw corrupt(where, `record ${records - 1} (${op.op}) comes after the ${TREE_PHASES[phase]} phase`)
        phase = opPhase
        inFile = op.op === 'file'
        size = inFile ? (op as { size: number }).size : 0
        end = 0
        yield { kind: 'op', op }
        continue
      }
      if (!inFile || start === undefined || length === undefined || length === 0 || start < end || start + length > size) {
        throw corrupt(where, `record ${records - 1} covers [${String(start)}, +${String(length)}), out of order, past the size ${size} or outside a file`)
      }
      end = start + length
      if (payload !== undefined) {
        dataBytes += length
        yield { kind: 'data', start, length, data: payload }
      } else yield { kind: 'zero', start, length }
    }
  }

  close(): void {
    fs.closeSync(this.#fd)
  }
}

function decodeOperation(where: string, index: number, payload: Buffer): TreeOperation {
  let parsed: unknown
  try {
    parsed = JSON.parse(payload.toString('utf8'))
  } catch {
    throw corrupt(where, `record ${index} is not a JSON operation`)
  }
  const result = treeOperationSchema.safeParse(parsed)
  if (!result.success) throw corrupt(where, `record ${index} is not an operation pagecow writes (${result.error.issues[0]?.message ?? 'invalid'})`)
  return result.data
}

function toSafe(n: bigint): number | undefined {
  return n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : undefined
}

function readAt(fd: number, length: number, position: number): Buffer {
  const out = Buffer.alloc(length)
  let done = 0
  while (done < length) {
    const n = fs.readSync(fd, out, done, length - done, position + done)
    if (n === 0) break
    done += n
  }
  return out.subarray(0, done)
}

/** Sequential reads in large blocks; `take` returns fewer bytes only at the end of the file. */
class BufferedFile {
  readonly #fd: number
  #block = Buffer.alloc(0)
  #offset = 0
  #filePosition: number

  constructor(fd: number, position: number) {
    this.#fd = fd
    this.#filePosition = position
  }

  get position(): number {
    return this.#filePosition - (this.#block.length - this.#offset)
  }

  take(length: number): Buffer {
    if (this.#block.length - this.#offset >= length) {
      const out = this.#block.subarray(this.#offset, this.#offset + length)
      this.#offset += length
      return out
    }
    const left = this.#block.subarray(this.#offset)
    const more = readAt(this.#fd, Math.max(READ_BLOCK, length - left.length), this.#filePosition)
    this.#filePosition += more.length
    this.#block = Buffer.concat([left, more])
    this.#offset = Math.min(length, this.#block.length)
    return this.#block.subarray(0, this.#offset)
  }
}
