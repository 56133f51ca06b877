// `pagecow read STORE [PATH] --offset N --length N`: bytes of the merged image (or of a file of a
// tree store) to stdout or a file.
import { open, type FileHandle } from 'node:fs/promises'
import { z } from 'zod'
import { isPagecowError, PagecowError } from '../../errors.js'
import { checkOutputPath } from '../../image/output-guard.js'
import type { AnyStore } from '../../open-store.js'
import { checkTreeOutput } from '../../tree/export.js'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand, SIZE_FORMS } from '../command.js'
import { commonFlags, parseCommandLine, sizeValue } from '../options.js'
import { startProgress } from '../progress.js'
import { cliFileError } from '../system-error.js'
import { checkStoreLimit } from '../store-limit.js'
import { checkPathArgument, withAnyStore } from '../with-any-store.js'

/** Bytes read from the store at a time. */
const CHUNK_BYTES = 16 * 1024 * 1024

const schema = z.strictObject({
  store: z.string().min(1),
  path: z.string().min(1).optional(),
  offset: sizeValue.optional(),
  length: sizeValue.optional(),
  output: z.string().min(1).optional(),
  ...commonFlags,
})

export function readCommand(io: CliIo) {
  const cmd = newCommand('read', io)
    .summary('read bytes of the merged image, or of a file of a tree store')
    .description('read LENGTH bytes at OFFSET of the merged image, or of file PATH of a tree store (shorter at its end), to stdout or a file')
    .argument('<STORE>', 'the store directory')
    .argument('[PATH]', 'tree stores: the file to read')
    .option('--offset <N>', `where to start (${SIZE_FORMS}); required for an image, default 0 for a file`)
    .option('--length <N>', 'how many bytes; required for an image, default to the end of a file')
    .option('--output <FILE>', 'write to FILE (created or replaced) instead of stdout')
    .action(async (store: string, path: string | undefined) => {
      const opts = parseCommandLine(cmd, schema, path === undefined ? { store } : { store, path })
      checkStoreLimit('read', [['--offset', opts.offset], ['--length', opts.length]])
      await withAnyStore(opts.store, { readOnly: true }, async (s) => {
        checkPathArgument(s, opts.path, 'read')
        // An image has no natural range: both stay required, reported as commander reports them.
        for (const [flag, value] of [['--offset <N>', opts.offset], ['--length <N>', opts.length]] as const) {
          if (s.kind === 'image' && value === undefined) cmd.error(`error: required option '${flag}' not specified`, { code: 'commander.missingMandatoryOptionValue' })
        }
        const source = await openSource(s, opts.path)
        try {
          const offset = opts.offset ?? 0
          const length = opts.length ?? Math.max(0, source.size - offset)
          let file: FileHandle | undefined
          if (opts.output !== undefined) {
            if (s.kind === 'image') checkOutputPath(s, opts.output)
            else checkTreeOutput(s, opts.output)
            try {
              file = await open(opts.output, 'w')
            } catch (err) {
              throw cliFileError(err, `opening ${opts.output}`)
            }
          }
          const progress = startProgress(io, 'read', length)
          try {
            for (let done = 0; done < length; ) {
              // A fresh buffer each time: a stream may still hold the last one after taking it.
              const chunk = await source.read(offset + done, Math.min(CHUNK_BYTES, length - done))
              if (chunk.length === 0) break // the end of the image or file
              if (file) await writeFile(file, chunk, opts.output ?? '')
              else await writeTo(io.stdout, chunk)
              done += chunk.length
              progress.update(done)
            }
          } finally {
            progress.stop()
            await file?.close()
          }
        } finally {
          await source.close()
        }
      })
    })
  return examples(cmd, [
    'pagecow read vm1.cow --offset 0 --length 512 | xxd',
    'pagecow read vm1.cow --offset 1G --length 16M --output part.bin',
    'pagecow read root.cow /etc/hosts',
  ])
}

/** What is read: the image, or one file of a tree store through a read-only handle. */
interface Source {
  size: number
  read(offset: number, length: number): Promise<Buffer>
  close(): Promise<void>
}

async function openSource(store: AnyStore, path: string | undefined): Promise<Source> {
  if (store.kind === 'image') return { size: store.size, read: (o, l) => store.read(o, l), close: async () => {} }
  const handle = await store.open(path!, 'r').catch((err: unknown) => {
    throw isPagecowError(err, 'EISDIR') ? new PagecowError('EISDIR', `read: ${path} is a directory; list it with pagecow ls`, { cause: err }) : err
  })
  return { size: (await handle.stat()).size, read: (o, l) => handle.read(o, l), close: () => handle.close() }
}

async function writeFile(file: FileHandle, data: Uint8Array, name: string): Promise<void> {
  try {
    await file.write(data)
  } catch (err) {
    throw cliFileError(err, `writing ${name}`)
  }
}
