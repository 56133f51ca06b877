// `pagecow truncate STORE [PATH] --size N`: set the image's (or a tree file's) size; regrown bytes
// read zeros, never the lower.
import { z } from 'zod'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand, SIZE_FORMS } from '../command.js'
import { describeBytes } from '../format-size.js'
import { commonFlags, parseCommandLine, sizeValue } from '../options.js'
import { checkStoreLimit } from '../store-limit.js'
import { checkPathArgument, withAnyStore } from '../with-any-store.js'

const schema = z.strictObject({ store: z.string().min(1), path: z.string().min(1).optional(), size: sizeValue, ...commonFlags })

export function truncateCommand(io: CliIo) {
  const cmd = newCommand('truncate', io)
    .summary("set the image's (or a tree file's) size")
    .description("set the image's size, or the size of file PATH of a tree store; bytes regrown after a shrink read zeros, never the old lower bytes")
    .argument('<STORE>', 'the store directory')
    .argument('[PATH]', 'tree stores: the file, like /etc/hosts')
    .requiredOption('--size <N>', `the new size (${SIZE_FORMS})`)
    .action(async (store: string, path: string | undefined) => {
      const opts = parseCommandLine(cmd, schema, path === undefined ? { store } : { store, path })
      checkStoreLimit('truncate', [['--size', opts.size]])
      const before = await withAnyStore(opts.store, {}, async (s) => {
        checkPathArgument(s, opts.path, 'truncate')
        if (s.kind === 'image') {
          const size = s.size
          await s.truncate(opts.size)
          return size
        }
        const { size } = await s.stat(opts.path!)
        await s.truncate(opts.path!, opts.size)
        return size
      })
      await writeTo(io.stdout, `size ${describeBytes(opts.size)}, was ${describeBytes(before)}\n`)
    })
  return examples(cmd, ['pagecow truncate vm1.cow --size 40G', 'pagecow truncate rootfs.cow /var/log/big.log --size 0'])
}
