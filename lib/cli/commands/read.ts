// `pagecow read STORE --offset N --length N`: bytes of the merged image to stdout or a file.
import { open, type FileHandle } from 'node:fs/promises'
import { z } from 'zod'
import { checkOutputPath } from '../../index.js'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand, SIZE_FORMS } from '../command.js'
import { commonFlags, parseCommandLine, sizeValue } from '../options.js'
import { startProgress } from '../progress.js'
import { cliFileError } from '../system-error.js'
import { withStore } from '../with-store.js'

/** Bytes read from the store at a time. */
const CHUNK_BYTES = 16 * 1024 * 1024

const schema = z.strictObject({
  store: z.string().min(1),
  offset: sizeValue,
  length: sizeValue,
  output: z.string().min(1).optional(),
  ...commonFlags,
})

export function readCommand(io: CliIo) {
  const cmd = newCommand('read', io)
    .summary('read bytes of the merged image')
    .description('read LENGTH bytes at OFFSET of the merged image (shorter at its end) to stdout or a file')
    .argument('<STORE>', 'the store directory')
    .requiredOption('--offset <N>', `where to start (${SIZE_FORMS})`)
    .requiredOption('--length <N>', 'how many bytes')
    .option('--output <FILE>', 'write to FILE (created or replaced) instead of stdout')
    .action(async (store: string) => {
      const opts = parseCommandLine(cmd, schema, { store })
      await withStore(opts.store, { readOnly: true }, async (s) => {
        let file: FileHandle | undefined
        if (opts.output !== undefined) {
          checkOutputPath(s, opts.output)
          try {
            file = await open(opts.output, 'w')
          } catch (err) {
            throw cliFileError(err, `opening ${opts.output}`)
          }
        }
        const progress = startProgress(io, 'read', opts.length)
        try {
          for (let done = 0; done < opts.length; ) {
            // A fresh buffer each time: a stream may still hold the last one after taking it.
            const chunk = await s.read(opts.offset + done, Math.min(CHUNK_BYTES, opts.length - done))
            if (chunk.length === 0) break // the end of the image
            if (file) await writeFile(file, chunk, opts.output ?? '')
            else await writeTo(io.stdout, chunk)
            done += chunk.length
            progress.update(done)
          }
        } finally {
          progress.stop()
          await file?.close()
        }
      })
    })
  return examples(cmd, ['pagecow read vm1.cow --offset 0 --length 512 | xxd', 'pagecow read vm1.cow --offset 1G --length 16M --output part.bin'])
}

async function writeFile(file: FileHandle, data: Uint8Array, name: string): Promise<void> {
  try {
    await file.write(data)
  } catch (err) {
    throw cliFileError(err, `writing ${name}`)
  }
}
