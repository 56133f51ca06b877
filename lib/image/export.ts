// Writing the merged image out as a plain raw file, sparse where the merged view reads zeros.
import * as fs from '../fs.js'
import { fromSystemError, parseWith, PagecowError } from '../errors.js'
import { z } from 'zod'
import type { ImageStore } from './image-store.js'
import { checkOutputPath } from './output-guard.js'

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
})

export type ExportOptions = z.input<typeof exportOptionsSchema>

/**
 * Write the merged image to `output`: holes, ZERO pages and all-zero blocks are left as holes,
 * everything else is copied. The file is fsynced before this returns.
 */
export async function exportImage(store: ImageStore, output: string, options: ExportOptions = {}): Promise<{ bytesCopied: number; size: number }> {
  const opts = parseWith(exportOptionsSchema, options, 'export')
  checkOutputPath(store, output)
  const size = store.size
  let fd: number
  try {
    const flags = fs.constants.O_WRONLY | fs.constants.O_CREAT | (opts.overwrite ? fs.constants.O_TRUNC : fs.constants.O_EXCL)
    fd = fs.openSync(output, flags, 0o644)
  } catch (err) {
    const e = fromSystemError(err, `creating ${output}`)
    if (e.code === 'EEXIST') throw new PagecowError('EEXIST', `${output} exists; choose another name or overwrite it`, { cause: err })
    throw e
  }
  const block = Buffer.alloc(BLOCK)
  const zeros = Buffer.alloc(BLOCK)
  let bytesCopied = 0
  try {
    fs.ftruncateSync(fd, size)
    for (const extent of store.extents()) {
      if (extent.state === 'hole' || extent.state === 'zero') continue
      const end = extent.start + extent.length
      for (let pos = extent.start; pos < end; pos += BLOCK) {
        const n = Math.min(BLOCK, end - pos)
        const chunk = block.subarray(0, n)
        await store.readInto(chunk, pos)
        if (!chunk.equals(zeros.subarray(0, n))) {
          fs.writeSync(fd, chunk, 0, n, pos)
          bytesCopied += n
        }
        opts.onProgress?.({ done: pos + n, total: size })
      }
    }
    fs.fsyncSync(fd)
    opts.onProgress?.({ done: size, total: size })
  } catch (err) {
    throw fromSystemError(err, `exporting to ${output}`)
  } finally {
    fs.closeSync(fd)
  }
  return { bytesCopied, size }
}
