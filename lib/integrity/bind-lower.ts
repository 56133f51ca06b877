// Bind a store to its lower (opt-in): hash every lower page once into lower_sums and mark the
// store record, after which reads check every lower page they serve (VerifiedLower) and
// `pagecow verify` can name each changed page. Committed in batches; the mark goes last, with
// the last batch, so a binding cut short (a crash, SIGKILL) leaves an unbound store that opens
// as before and can be bound again.
import { basename, resolve } from 'node:path'
import { z } from 'zod'
import { parseWith, PagecowError } from '../errors.js'
import { describeChange, fingerprint } from '../image/fingerprint.js'
import { storeKind } from '../open-store.js'
import { isStoreLower, readStoreMeta, writeMeta, type LowerBinding } from '../store/meta.js'
import { checkNotSealed } from '../layers/seal.js'
import { checkNotSealed as checkTreeNotSealed } from '../store/seal.js'
import { StoreCore } from '../store/store-core.js'
import { lowerObjects, type LowerObjectRef } from './lower-objects.js'
import { lowerPageSums } from './lower-page-sums.js'
import { SUMS_PER_BLOCK } from './page-sums.js'
import { writeLowerBlock } from './lower-sums.js'
import { upperPathOf } from './upper-path.js'

/** Rows written per transaction (16 rows of 8 KiB: the sums of 64 MiB of 4 KiB pages). */
const BATCH_ROWS = 16

/** Progress of work over the lower (and, for verify, the upper): bytes done of bytes in all. */
export interface LowerProgress {
  doneBytes: number
  totalBytes: number
}

const onProgress = z.custom<(progress: LowerProgress) => void>((v) => typeof v === 'function', 'onProgress must be a function').optional()

/** `bindLower(store, { onProgress })`: onProgress is called as the lower is read. */
export const bindOptionsSchema = z.strictObject({ onProgress })
export type BindOptions = z.input<typeof bindOptionsSchema>

/** What bindLower() recorded. */
export interface BindResult {
  path: string
  kind: 'image' | 'tree'
  /** The lower files whose pages were recorded (1 for an image). */
  files: number
  pages: number
  bytes: number
  recordedAt: string
}

/**
 * Record the sum of every lower page of the store in `dir` and bind it (the writer lock is
 * taken: no other writer may be open). Recording again replaces what was recorded. An image
 * lower that no longer matches its fingerprint is refused (ESTALE): binding would bless it.
 */
export async function bindLower(dir: string, options: BindOptions = {}): Promise<BindResult> {
  const opts = parseWith(bindOptionsSchema, options, 'bindLower')
  const path = resolve(dir)
  const kind = await storeKind(path)
  const closers: Array<() => void> = [] // the lower a tree walk opened
  const core = StoreCore.open(path, { readOnly: false, autoFlushMs: 0, files: kind === 'image' ? [basename(upperPathOf(path, 'image', 1))] : [] })
  try {
    const meta = readStoreMeta(core.db, path)
    if (meta.kind === 'image') {
      checkNotSealed(path, meta, 'binding its lower')
      if (isStoreLower(meta.lower)) {
        throw new PagecowError('EINVAL', `${path} is layered on the store ${meta.lower.path}, which vouches for its own pages; bind the raw image at the bottom of the chain instead`)
      }
    } else {
      // A sealed tree base is never written: its lower sums are part of what the stores on it read.
      checkTreeNotSealed(meta.sealed, path)
    }
    const { lowerBinding: _was, ...unbound } = meta
    const objects: LowerObjectRef[] = []
    for await (const o of lowerObjects(meta, closers, path)) objects.push(o)
    if (meta.kind === 'image') {
      const { LowerImage } = await import('../image/lower-image.js')
      const { locateRawLower } = await import('../image/locate-lower.js')
      const lowerPath = isStoreLower(meta.lower) ? meta.lower.path : locateRawLower(path, meta.lower)
      const image = LowerImage.open(lowerPath)
      try {
        const change = isStoreLower(meta.lower) ? null : describeChange(meta.lower.fingerprint, fingerprint(image))
        if (change) throw new PagecowError('ESTALE', `the lower image ${meta.lower.path} changed since the store was created (${change}); it is not bound`)
      } finally {
        image.close()
      }
    }
    // Unbound first, so that whatever a crash leaves is an unbound store.
    core.commit(() => {
      writeMeta(core.db, unbound)
      core.db.prepare('DELETE FROM lower_sums').run()
    })
    const totalBytes = objects.reduce((n, o) => n + o.size, 0)
    let doneBytes = 0
    let pages = 0
    let batch: Array<{ key: number; block: number; sums: BigUint64Array }> = []
    const writeBatch = (last?: () => void) => {
      const rows = batch
      batch = []
      core.commit(() => {
        for (const r of rows) writeLowerBlock(core.db, r.key, r.block, r.sums)
        last?.()
      })
    }
    for (const o of objects) {
      const lower = o.open()
      try {
        if (lower.size !== o.size) throw new PagecowError('ESTALE', `${o.where} changed while it was being recorded; record again`)
        let sums = new BigUint64Array(SUMS_PER_BLOCK)
        let block = 0
        let filled = false
        for (const [page, sum] of lowerPageSums(lower, meta.pageSize, (n) => {
          doneBytes += n
          opts.onProgress?.({ doneBytes, totalBytes })
        })) {
          const b = Math.floor(page / SUMS_PER_BLOCK)
          if (b !== block) {
            batch.push({ key: o.key, block, sums })
            if (batch.length >= BATCH_ROWS) writeBatch()
            sums = new BigUint64Array(SUMS_PER_BLOCK)
            block = b
          }
          sums[page % SUMS_PER_BLOCK] = sum
          filled = true
          pages++
        }
        // Block 0 is written even for an empty file: it says the file is bound, with no pages.
        if (filled || block === 0) batch.push({ key: o.key, block, sums })
        if (batch.length >= BATCH_ROWS) writeBatch()
      } finally {
        lower.close()
      }
    }
    const binding: LowerBinding = { recordedAt: new Date().toISOString(), pages, bytes: totalBytes }
    writeBatch(() => writeMeta(core.db, { ...unbound, lowerBinding: binding }))
    await core.generation.settle() // the commits' generation record synced, as close() would
    return { path, kind: meta.kind, files: objects.length, pages, bytes: totalBytes, recordedAt: binding.recordedAt }
  } finally {
    core.abandon()
    for (const close of closers) close()
  }
}
