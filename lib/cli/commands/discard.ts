// `pagecow discard STORE --offset N --length N`: trim; whole pages become ZERO, partial ones stay.
import { z } from 'zod'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand, SIZE_FORMS } from '../command.js'
import { describeBytes } from '../format-size.js'
import { commonFlags, parseCommandLine, sizeValue } from '../options.js'
import { withStore } from '../with-store.js'

const schema = z.strictObject({ store: z.string().min(1), offset: sizeValue, length: sizeValue, ...commonFlags })

export function discardCommand(io: CliIo) {
  const cmd = newCommand('discard', io)
    .summary('trim a range (whole pages become ZERO)')
    .description('trim a range: the pages wholly inside it become ZERO pages and free their space; partial pages are left as they are')
    .argument('<STORE>', 'the store directory')
    .requiredOption('--offset <N>', `start of the range (${SIZE_FORMS})`)
    .requiredOption('--length <N>', 'length of the range (the part past the end of the image is ignored)')
    .action(async (store: string) => {
      const opts = parseCommandLine(cmd, schema, { store })
      await withStore(opts.store, {}, (s) => s.discard(opts.offset, opts.length))
      await writeTo(io.stdout, `discarded ${describeBytes(opts.length)} at offset ${opts.offset}\n`)
    })
  return examples(cmd, ['pagecow discard vm1.cow --offset 0 --length 1G'])
}
