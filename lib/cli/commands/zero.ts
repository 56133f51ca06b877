// `pagecow zero STORE [PATH] --offset N --length N`: the range reads zeros; whole pages store nothing.
import { z } from 'zod'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand, SIZE_FORMS } from '../command.js'
import { describeBytes } from '../format-size.js'
import { growthNote } from '../growth.js'
import { commonFlags, parseCommandLine, sizeValue } from '../options.js'
import { checkStoreLimit } from '../store-limit.js'
import { checkPathArgument, withAnyStore } from '../with-any-store.js'

const schema = z.strictObject({ store: z.string().min(1), path: z.string().min(1).optional(), offset: sizeValue, length: sizeValue, ...commonFlags })

export function zeroCommand(io: CliIo) {
  const cmd = newCommand('zero', io)
    .summary('zero a range (whole pages become ZERO)')
    .description('write zeros over a range of the image (or of file PATH of a tree store): whole pages become ZERO pages and free their space (like NBD WRITE_ZEROES)')
    .argument('<STORE>', 'the store directory')
    .argument('[PATH]', 'tree stores: the file, like /var/lib/big.img')
    .requiredOption('--offset <N>', `start of the range (${SIZE_FORMS})`)
    .requiredOption('--length <N>', 'length of the range; the image or file grows if it ends past it (the output says so for an image)')
    .action(async (store: string, path: string | undefined) => {
      const opts = parseCommandLine(cmd, schema, path === undefined ? { store } : { store, path })
      checkStoreLimit('zero', [['--offset', opts.offset], ['--length', opts.length]])
      const grew = await withAnyStore(opts.store, {}, async (s) => {
        checkPathArgument(s, opts.path, 'zero')
        if (s.kind === 'tree') {
          await s.zero(opts.path!, opts.offset, opts.length)
          return ''
        }
        const before = s.size
        await s.zero(opts.offset, opts.length)
        return growthNote(before, s.size)
      })
      await writeTo(io.stdout, `zeroed ${describeBytes(opts.length)} at offset ${opts.offset}${grew}\n`)
    })
  return examples(cmd, ['pagecow zero vm1.cow --offset 1M --length 8M', 'pagecow zero rootfs.cow /var/lib/disk.img --offset 0 --length 1G'])
}
