// `pagecow export STORE OUTPUT`: the merged image written out as a plain raw file, sparse.
import { z } from 'zod'
import { checkOutputPath, exportImage, isPagecowError, PagecowError } from '../../index.js'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand } from '../command.js'
import { formatSize } from '../format-size.js'
import { commonFlags, parseCommandLine } from '../options.js'
import { startProgress } from '../progress.js'
import { withStore } from '../with-store.js'

const schema = z.strictObject({
  store: z.string().min(1),
  output: z.string().min(1),
  force: z.boolean().optional(),
  json: z.boolean().optional(),
  ...commonFlags,
})

export function exportCommand(io: CliIo) {
  const cmd = newCommand('export', io)
    .summary('write the merged image to a raw file')
    .description('write the merged image to OUTPUT as a raw file; holes, zero pages and all-zero blocks stay sparse')
    .argument('<STORE>', 'the store directory')
    .argument('<OUTPUT>', 'the raw image file to write')
    .option('--force', 'replace OUTPUT if it exists')
    .option('--json', 'print the result ({bytesCopied, size}) as JSON')
    .action(async (store: string, output: string) => {
      const opts = parseCommandLine(cmd, schema, { store, output })
      const result = await withStore(opts.store, { readOnly: true }, async (s) => {
        checkOutputPath(s, opts.output)
        const progress = startProgress(io, 'export', s.size)
        try {
          return await exportImage(s, opts.output, { overwrite: opts.force === true, onProgress: (p) => progress.update(p.done) })
        } catch (err) {
          if (isPagecowError(err, 'EEXIST')) throw new PagecowError('EEXIST', `${opts.output} exists; pass --force to replace it`, { cause: err })
          throw err
        } finally {
          progress.stop()
        }
      })
      await writeTo(
        io.stdout,
        opts.json
          ? `${JSON.stringify(result, null, 2)}\n`
          : `exported ${formatSize(result.size)} to ${opts.output}: ${formatSize(result.bytesCopied)} of data copied, the rest left sparse\n`,
      )
    })
  return examples(cmd, ['pagecow export vm1.cow vm1.img', 'pagecow export vm1.cow vm1.img --force && qemu-img map --output=json vm1.img'])
}
