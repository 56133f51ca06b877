// `pagecow zero STORE --offset N --length N`: the range reads zeros; whole pages store nothing.
import { z } from 'zod'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand, SIZE_FORMS } from '../command.js'
import { describeBytes } from '../format-size.js'
import { commonFlags, parseCommandLine, sizeValue } from '../options.js'
import { withStore } from '../with-store.js'

const schema = z.strictObject({ store: z.string().min(1), offset: sizeValue, length: sizeValue, ...commonFlags })

export function zeroCommand(io: CliIo) {
  const cmd = newCommand('zero', io)
    .summary('zero a range (whole pages become ZERO)')
    .description('write zeros over a range: whole pages become ZERO pages and free their space (like NBD WRITE_ZEROES)')
    .argument('<STORE>', 'the store directory')
    .requiredOption('--offset <N>', `start of the range (${SIZE_FORMS})`)
    .requiredOption('--length <N>', 'length of the range; the image grows if it ends past it')
    .action(async (store: string) => {
      const opts = parseCommandLine(cmd, schema, { store })
      await withStore(opts.store, {}, (s) => s.zero(opts.offset, opts.length))
      await writeTo(io.stdout, `zeroed ${describeBytes(opts.length)} at offset ${opts.offset}\n`)
    })
  return examples(cmd, ['pagecow zero vm1.cow --offset 1M --length 8M'])
}
