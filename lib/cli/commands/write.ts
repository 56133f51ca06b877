// `pagecow write STORE [PATH] --offset N`: bytes from stdin or a file written into the image (or
// into a file of a tree store), streamed.
import { constants } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import type { Readable } from 'node:stream'
import { z } from 'zod'
import { isPagecowError, PagecowError } from '../../errors.js'
import type { AnyStore } from '../../open-store.js'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand, SIZE_FORMS } from '../command.js'
import { describeBytes } from '../format-size.js'
import { growthNote } from '../growth.js'
import { commonFlags, parseCommandLine, sizeValue } from '../options.js'
import { startProgress, type Progress } from '../progress.js'
import { cliFileError } from '../system-error.js'
import { checkStoreLimit } from '../store-limit.js'
import { checkPathArgument, withAnyStore } from '../with-any-store.js'

/** Input is gathered into writes of up to this many bytes, cut at page boundaries. */
const CHUNK_BYTES = 16 * 1024 * 1024

const schema = z.strictObject({
  store: z.string().min(1),
  path: z.string().min(1).optional(),
  offset: sizeValue,
  input: z.string().min(1).optional(),
  ...commonFlags,
})

export function writeCommand(io: CliIo) {
  const cmd = newCommand('write', io)
    .summary('write bytes from stdin or a file')
    .description('write the bytes of stdin (or --input FILE) at OFFSET into the image, or into file PATH of a tree store (made if missing); it grows if they end past it, and for an image the output says so')
    .argument('<STORE>', 'the store directory')
    .argument('[PATH]', 'tree stores: the file to write')
    .requiredOption('--offset <N>', `where the bytes go (${SIZE_FORMS})`)
    .option('--input <FILE>', 'read the bytes from FILE instead of stdin')
    .action(async (store: string, path: string | undefined) => {
      const opts = parseCommandLine(cmd, schema, path === undefined ? { store } : { store, path })
      checkStoreLimit('write', [['--offset', opts.offset]])
      let file: FileHandle | undefined
      let total = 0
      if (opts.input !== undefined) {
        try {
          file = await open(opts.input, 'r')
          total = (await file.stat()).size
        } catch (err) {
          await file?.close()
          throw cliFileError(err, `opening ${opts.input}`)
        }
      }
      try {
        const source = file ? file.createReadStream({ autoClose: false }) : io.stdin
        const { written, grew } = await withAnyStore(opts.store, {}, async (s) => {
          checkPathArgument(s, opts.path, 'write')
          const before = s.kind === 'image' ? s.size : 0
          const target = await openTarget(s, opts.path)
          const progress = startProgress(io, 'write', total)
          try {
            const written = await writeStream(target, opts.offset, source, progress)
            return { written, grew: s.kind === 'image' ? growthNote(before, s.size) : '' }
          } finally {
            progress.stop()
            await target.close()
          }
        })
        await writeTo(io.stdout, `wrote ${describeBytes(written)} at offset ${opts.offset}${grew}\n`)
      } finally {
        await file?.close()
      }
    })
  return examples(cmd, ['printf hello | pagecow write vm1.cow --offset 4k', 'pagecow write vm1.cow --offset 1G --input patch.bin', 'echo nameserver 10.0.0.1 | pagecow write root.cow /etc/resolv.conf --offset 0'])
}

/** Where the bytes go: the image, or one file of a tree store through a write handle. */
interface Target {
  pageSize: number
  write(offset: number, data: Uint8Array): Promise<unknown>
  close(): Promise<void>
}

async function openTarget(store: AnyStore, path: string | undefined): Promise<Target> {
  if (store.kind === 'image') return { pageSize: store.pageSize, write: (o, d) => store.write(o, d), close: async () => {} }
  const handle = await store.open(path!, constants.O_WRONLY | constants.O_CREAT).catch((err: unknown) => {
    throw isPagecowError(err, 'EISDIR') ? new PagecowError('EISDIR', `write: ${path} is a directory`, { cause: err }) : err
  })
  return { pageSize: store.pageSize, write: (o, d) => handle.write(o, d), close: () => handle.close() }
}

/**
 * Write everything `source` yields at `offset`, in writes of up to CHUNK_BYTES that end on page
 * boundaries (except the last), so no page is copied up twice for an unlucky pipe read size.
 */
async function writeStream(store: Target, offset: number, source: Readable, progress: Progress): Promise<number> {
  const pageSize = store.pageSize
  const buffer = Buffer.allocUnsafe(CHUNK_BYTES)
  let filled = 0
  let position = offset
  try {
    for await (const piece of source as AsyncIterable<Buffer | string>) {
      const bytes = typeof piece === 'string' ? Buffer.from(piece) : piece
      for (let used = 0; used < bytes.length; ) {
        const n = Math.min(bytes.length - used, buffer.length - filled)
        buffer.set(bytes.subarray(used, used + n), filled)
        filled += n
        used += n
        if (filled < buffer.length) continue
        const cut = Math.floor((position + filled) / pageSize) * pageSize - position
        await store.write(position, buffer.subarray(0, cut))
        buffer.copyWithin(0, cut, filled)
        filled -= cut
        position += cut
        progress.update(position - offset)
      }
    }
  } catch (err) {
    throw cliFileError(err, 'reading the input')
  }
  if (filled > 0) await store.write(position, buffer.subarray(0, filled))
  return position + filled - offset
}
