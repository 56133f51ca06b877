// Writing the merged image out as a plain raw file, sparse where the merged view reads zeros; or
// as a stream of all its bytes (standard output).
import { isZero } from '../zero-bytes.js'
import type { Writable } from 'node:stream'
import * as fs from '../fs.js'
import { fromSystemError, parseWith, PagecowError } from '../errors.js'
import { z } from 'zod'
import type { ImageStore } from './image-store.js'
import { checkOutputPath } from './output-guard.js'
import { checkAborted, writeFileThenPublish } from './temp-output.js'
import { storeIdentity } from '../incremental/store-identity.js'
import { writePosition } from '../incremental/target-position.js'

const BLOCK = 1024 * 1024

export interface ExportProgress {
  /** Bytes of the image done so far. */
  done: number
  /** Size of the image. */
  total: number
}

const exportOptionsSchema = z.strictObject({
  /** Replace an existing output file. Default false. */
  overwrite: z.boolean().default(false),
  /** Called as the export advances. */
  onProgress: z.custom<(progress: ExportProgress) => void>((v) => typeof v === 'function').optional(),
  /** Stop the export (EINTR, nothing kept at the output) when this is aborted. */
  signal: z.custom<AbortSignal>((v) => v instanceof AbortSignal, 'signal must be an AbortSignal').optional(),
})

export type ExportOptions = z.input<typeof exportOptionsSchema>

const streamOptionsSchema = exportOptionsSchema.omit({ overwrite: true })
export type ExportStreamOptions = z.input<typeof streamOptionsSchema>

/**
 * Write the merged image to `output`: holes, ZERO pages and all-zero blocks are left as holes,
 * everything else is copied. Where the file system keeps user xattrs, the output records in
 * `user.pagecow.position` its store and the newest mark at the export's start (what
 * `applyIncremental` checks a backup chain by). Never half done: the image is written to a temporary file beside
 * `output`, synced, then renamed into place; on failure or abort the temporary is removed and
 * nothing is at `output` (an existing file there stays as it was).
 */
export async function exportImage(store: ImageStore, output: string, options: ExportOptions = {}): Promise<{ bytesCopied: number; size: number }> {
  const opts = parseWith(exportOptionsSchema, options, 'export')
  checkOutputPath(store, output)
  // Refused before any work: an hour-long export must not fail only at its end.
  const existing = statOrUndefined(output)
  if (existing && !opts.overwrite) throw new PagecowError('EEXIST', `${output} exists; choose another name or overwrite it`)
  if (existing && !existing.isFile()) {
    throw new PagecowError('EINVAL', `${output} is not a regular file; an export makes a file and renames it into place (for a device: pagecow export STORE - | dd of=${output})`)
  }
  checkAborted(opts.signal, output)
  // The newest mark before the size and the bytes are read: the export is at or after it, which
  // is where an incremental since that mark applies (recorded on the output for `apply`).
  const at = store.marks().at(-1)
  const size = store.size
  const block = Buffer.alloc(BLOCK)
  let bytesCopied = 0
  await writeFileThenPublish(output, opts.overwrite, opts.signal, async (fd) => {
    fs.ftruncateSync(fd, size)
    for (const extent of store.extents()) {
      if (extent.state === 'hole' || extent.state === 'zero') continue
      const end = extent.start + extent.length
      for (let pos = extent.start; pos < end; pos += BLOCK) {
        checkAborted(opts.signal, output)
        const n = Math.min(BLOCK, end - pos)
        const chunk = block.subarray(0, n)
        // In the thread pool: a bulk read of the disk, and the event loop stays free to see SIGINT.
        await store.readInto(chunk, pos, { threadPool: true })
        if (!isZero(chunk)) {
          for (let done = 0; done < n; ) done += fs.writeSync(fd, chunk, done, n - done, pos + done)
          bytesCopied += n
        }
        opts.onProgress?.({ done: pos + n, total: size })
      }
    }
    writePosition(fd, { store: storeIdentity(store.info()), at: at === undefined ? null : { name: at.name, epoch: at.epoch, created: at.created } })
  })
  opts.onProgress?.({ done: size, total: size })
  return { bytesCopied, size }
}

/**
 * Write every byte of the merged image to `stream` (zeros included: a pipe has no holes), in
 * blocks, waiting for the stream to take each. For `pagecow export STORE -`.
 */
export async function exportImageToStream(store: ImageStore, stream: Writable, options: ExportStreamOptions = {}): Promise<{ bytesCopied: number; size: number }> {
  const opts = parseWith(streamOptionsSchema, options, 'export')
  const size = store.size
  for (let pos = 0; pos < size; ) {
    checkAborted(opts.signal, 'standard output')
    const n = Math.min(BLOCK, size - pos)
    // A new buffer each block: the stream may still hold the previous one.
    const chunk = Buffer.allocUnsafe(n)
    await store.readInto(chunk, pos)
    await new Promise<void>((resolve, reject) => stream.write(chunk, (err) => (err ? reject(fromSystemError(err, 'writing the image to standard output')) : resolve())))
    pos += n
    opts.onProgress?.({ done: pos, total: size })
  }
  return { bytesCopied: size, size }
}

function statOrUndefined(path: string) {
  try {
    return fs.statSync(path)
  } catch {
    return undefined
  }
}
