// `pagecow apply INCREMENTAL TARGET`: lay an incremental onto the image (or file) it was made
// against, in place; a tree incremental goes to apply-tree-incremental.ts. What a backup chain needs:
// - Nothing is applied from a damaged or cut-short incremental: the whole file is checked first.
// - Nothing is applied to the wrong target: it must be of the same store and at or after the mark
//   the incremental starts from, and not past the mark it reaches (its position attribute, when
//   the file system keeps it), and it must hold the content the incremental expects.
// - A cut-short apply (a crash, Ctrl-C) leaves the target marked as being updated by that
//   incremental: applying the same one again finishes it (an incremental writes whole content,
//   so applying it twice is applying it once), and any other is refused until then. The new
//   position is recorded only after the content is synced.
// - One apply at a time: a second one onto the same target is refused (EBUSY) while one runs.
// In place, not into a copy: a copy would cost the whole image for every increment.
import { z } from 'zod'
import * as fs from '../fs.js'
import { fromSystemError, parseWith, PagecowError } from '../errors.js'
import { checkAborted } from '../image/temp-output.js'
import { zeroRange } from './zero-range.js'
import { hashRuns } from './expected-content.js'
import type { ImageHeader, IncrementalMark } from './incremental-format.js'
import { IncrementalReader } from './incremental-reader.js'
import { applyTreeIncremental, type TreeApplyResult } from './apply-tree-incremental.js'
import { lockTarget } from './target-lock.js'
import { checkPosition, readPosition, writePosition, type TargetPosition } from './target-position.js'

const YIELD_BYTES = 16 * 1024 * 1024

export interface ApplyProgress {
  /** `check`: reading the incremental through; `apply`: writing the target. */
  phase: 'check' | 'apply'
  /** Bytes of the target covered so far in this phase. */
  done: number
  /** Bytes of the target the incremental covers. */
  total: number
}

const applyOptionsSchema = z.strictObject({
  /** Called as the apply advances. */
  onProgress: z.custom<(progress: ApplyProgress) => void>((v) => typeof v === 'function').optional(),
  /** Stop before the target is touched (EINTR); once writing, stop between records (apply again to finish). */
  signal: z.custom<AbortSignal>((v) => v instanceof AbortSignal, 'signal must be an AbortSignal').optional(),
})

export type ApplyOptions = z.input<typeof applyOptionsSchema>
export type CheckedApplyOptions = z.output<typeof applyOptionsSchema>

/** What an apply did, either kind (plain data; `pagecow apply --json` prints it). */
export interface ApplyResultBase {
  /** The incremental's identity. */
  id: string
  since: IncrementalMark
  reached: IncrementalMark
  /** DATA, ZERO (and, for a tree, OP) records. */
  records: number
  dataBytes: number
  zeroBytes: number
  /** Whether the target's chain position was checked (it had one) and is recorded now. */
  positionChecked: boolean
  positionRecorded: boolean
  /** Whether this finished an apply of the same incremental that had been cut short. */
  resumed: boolean
}

/** An image's (or one file's) incremental applied. */
export interface ImageApplyResult extends ApplyResultBase {
  kind: 'image' | 'file'
  path?: string
  /** The target's size now. */
  size: number
}

export type ApplyResult = ImageApplyResult | TreeApplyResult

/**
 * Apply the incremental `incremental` onto `target`: an image file (or one file) for an image or
 * file incremental, a directory for a tree incremental.
 */
export async function applyIncremental(incremental: string, target: string, options: ApplyOptions = {}): Promise<ApplyResult> {
  const opts = parseWith(applyOptionsSchema, options, 'apply')
  const reader = IncrementalReader.open(incremental)
  try {
    const h = reader.header
    if (h.kind === 'tree') return await applyTreeIncremental(reader, h, incremental, target, opts)
    return await applyImage(reader, h, incremental, target, opts)
  } finally {
    reader.close()
  }
}

async function applyImage(reader: IncrementalReader, h: ImageHeader, incremental: string, target: string, opts: CheckedApplyOptions): Promise<ImageApplyResult> {
  {
    // Phase 1: the whole incremental is read and checked before the target is opened for writing.
    let total = 0
    let records = 0
    let dataBytes = 0
    let zeroBytes = 0
    let sinceYield = 0
    for (const r of reader.records()) {
      if (r.kind === 'op') continue // never in an image incremental (the reader refuses it)
      total += r.length
      records++
      if (r.kind === 'data') dataBytes += r.length
      else zeroBytes += r.length
      sinceYield += r.kind === 'data' ? r.length : 0
      if (sinceYield >= YIELD_BYTES) {
        sinceYield = 0
        opts.onProgress?.({ phase: 'check', done: r.start + r.length, total: h.size })
        await yieldToLoop()
        checkAborted(opts.signal, target)
      }
    }
    checkAborted(opts.signal, target)

    const fd = openTarget(target, incremental)
    try {
      lockTarget(fd, target)
      const position = readPosition(fd, target)
      const resumed = position?.applying?.id === reader.id
      if (position) checkPosition(position, reader.id, h.store, h.since, h.reached, target, incremental)
      const expected = await hashRuns(h.expect.runs, (b, o) => fs.readSync(fd, b, 0, b.length, o))
      if (expected !== h.expect.sha256) {
        throw new PagecowError(
          'ECHAIN',
          `${target} does not hold the content ${incremental} expects (pages not changed since the mark ${JSON.stringify(h.since.name)} differ): ` +
            `it is not an image of this store at or after that mark (an incremental missing before this one, one applied out of order, or a full export made before the mark); nothing was applied`,
        )
      }
      checkAborted(opts.signal, target)

      // Phase 2: say what is being applied, then apply, then say where the target stands.
      const base = position?.at ?? null
      const recorded = writePosition(fd, { store: h.store, at: base, applying: { id: reader.id, since: h.since, reached: h.reached } })
      if (recorded) fs.fsyncSync(fd)
      fs.ftruncateSync(fd, h.size)
      let done = 0
      sinceYield = 0
      for (const r of reader.records()) {
        if (r.kind === 'op') continue
        if (r.kind === 'data') {
          for (let w = 0; w < r.length; ) w += fs.writeSync(fd, r.data, w, r.length - w, r.start + w)
        } else zeroRange(fd, r.start, r.length)
        done += r.length
        sinceYield += r.kind === 'data' ? r.length : 0
        if (sinceYield >= YIELD_BYTES) {
          sinceYield = 0
          opts.onProgress?.({ phase: 'apply', done, total })
          await yieldToLoop()
          if (opts.signal?.aborted) {
            throw new PagecowError('EINTR', `apply of ${incremental} onto ${target} interrupted; the target is part way: apply the same incremental again to finish (no other is accepted until then)`)
          }
        }
      }
      fs.fsyncSync(fd)
      const at: TargetPosition = { store: h.store, at: h.reached }
      const positionRecorded = writePosition(fd, at)
      if (positionRecorded) fs.fsyncSync(fd)
      opts.onProgress?.({ phase: 'apply', done: total, total })
      return {
        id: reader.id,
        kind: h.kind,
        ...(h.path === undefined ? {} : { path: h.path }),
        since: h.since,
        reached: h.reached,
        size: h.size,
        records,
        dataBytes,
        zeroBytes,
        positionChecked: position !== undefined,
        positionRecorded,
        resumed,
      }
    } catch (err) {
      throw fromSystemError(err, `applying ${incremental} onto ${target}`)
    } finally {
      fs.closeSync(fd)
    }
  }
}

function openTarget(target: string, incremental: string): number {
  let fd: number
  try {
    fd = fs.openSync(target, fs.constants.O_RDWR | fs.constants.O_NOFOLLOW)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ELOOP') throw new PagecowError('EINVAL', `${target} is a symlink; name the image itself`, { cause: err })
    if (code === 'EISDIR') throw new PagecowError('EINVAL', `${target} is a directory; apply onto the image file a full export made`, { cause: err })
    throw fromSystemError(err, `opening ${target}`)
  }
  try {
    const st = fs.fstatSync(fd)
    if (!st.isFile()) throw new PagecowError('EINVAL', `${target} is not a regular file; apply onto an image file (a device: apply to a file, then copy it)`)
    const inc = fs.statSync(incremental)
    if (inc.dev === st.dev && inc.ino === st.ino) throw new PagecowError('EINVAL', `${target} is the incremental itself`)
  } catch (err) {
    fs.closeSync(fd)
    throw err
  }
  return fd
}

function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}
