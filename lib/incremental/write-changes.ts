// The content records of one image or file: its changed extents as they read now, as DATA where
// there are bytes and ZERO where they read zeros (a block of zeros costs no bytes either way).
// The image, file and tree incrementals write their changed ranges the same way.
import type { ChangedExtent } from '../changes/changed-extents.js'
import { checkAborted } from '../image/temp-output.js'
import type { IncrementalWriter } from './incremental-writer.js'
import { isZero } from '../zero-bytes.js'

const BLOCK = 1024 * 1024

/** Bytes `changed` covers within `size` (truncated pieces cost nothing: apply cuts the target to the size). */
export function changedBytesOf(changed: Iterable<ChangedExtent>, size: number): number {
  let total = 0
  for (const e of changed) if (e.change !== 'truncated') total += Math.max(0, Math.min(size, e.start + e.length) - e.start)
  return total
}

/**
 * Write the records of `changed` (in offset order) for content of `size` bytes read with
 * `readInto`; `onBytes` after each block. A short read (the file shrank under a live writer)
 * reads as zeros.
 */
export async function writeChanges(
  writer: IncrementalWriter,
  changed: Iterable<ChangedExtent>,
  size: number,
  readInto: (target: Buffer, offset: number) => Promise<number>,
  onBytes: (n: number) => void,
  signal: AbortSignal | undefined,
  where: string,
): Promise<void> {
  const block = Buffer.alloc(BLOCK)
  for (const e of changed) {
    if (e.change === 'truncated') continue // past the size: apply cuts the target to it
    const end = Math.min(size, e.start + e.length)
    if (e.change === 'zeroed') {
      if (end > e.start) {
        checkAborted(signal, where)
        await writer.zero(e.start, end - e.start)
        onBytes(end - e.start)
      }
      continue
    }
    for (let pos = e.start; pos < end; ) {
      checkAborted(signal, where)
      const n = Math.min(BLOCK, end - pos)
      const chunk = block.subarray(0, n)
      const got = await readInto(chunk, pos)
      chunk.fill(0, got)
      if (isZero(chunk)) await writer.zero(pos, n)
      else await writer.data(pos, Buffer.from(chunk))
      pos += n
      onBytes(n)
    }
  }
}
