// `pagecow discard STORE [PATH] --offset N --length N`: trim; whole pages become ZERO, partial ones stay.
import { z } from 'zod'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand, SIZE_FORMS } from '../command.js'
import { describeBytes } from '../format-size.js'
import { commonFlags, parseCommandLine, sizeValue } from '../options.js'
import { checkStoreLimit } from '../store-limit.js'
import { checkPathArgument, withAnyStore } from '../with-any-store.js'

const schema = z.strictObject({ store: z.string().min(1), path: z.string().min(1).optional(), offset: sizeValue, length: sizeValue, ...commonFlags })

export function discardCommand(io: CliIo) {
  const cmd = newCommand('discard', io)
    .summary('trim a range (whole pages become ZERO)')
    .description('trim a range of the image (or of file PATH of a tree store): the pages wholly inside it become ZERO pages and free their space; partial pages are left as they are')
    .argument('<STORE>', 'the store directory')
    .argument('[PATH]', 'tree stores: the file, like /var/lib/big.img')
    .requiredOption('--offset <N>', `start of the range (${SIZE_FORMS})`)
    .requiredOption('--length <N>', 'length of the range (the part past the end of the file is ignored)')
    .action(async (store: string, path: string | undefined) => {
      const opts = parseCommandLine(cmd, schema, path === undefined ? { store } : { store, path })
      checkStoreLimit('discard', [['--offset', opts.offset], ['--length', opts.length]])
      await withAnyStore(opts.store, {}, async (s) => {
        checkPathArgument(s, opts.path, 'discard')
        if (s.kind === 'image') await s.discard(opts.offset, opts.length)
        else await s.discard(opts.path!, opts.offset, opts.length)
      })
      await writeTo(io.stdout, `discarded ${describeBytes(opts.length)} at offset ${opts.offset}\n`)
    })
  return examples(cmd, ['pagecow discard vm1.cow --offset 0 --length 1G', 'pagecow discard rootfs.cow /var/lib/disk.img --offset 0 --length 1G'])
}
