// `pagecow truncate STORE --size N`: set the image's size; regrown bytes read zeros, never the lower.
import { z } from 'zod'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand, SIZE_FORMS } from '../command.js'
import { describeBytes } from '../format-size.js'
import { commonFlags, parseCommandLine, sizeValue } from '../options.js'
import { withStore } from '../with-store.js'

const schema = z.strictObject({ store: z.string().min(1), size: sizeValue, ...commonFlags })

export function truncateCommand(io: CliIo) {
  const cmd = newCommand('truncate', io)
    .summary("set the image's size")
    .description("set the image's size; bytes regrown after a shrink read zeros, never the old lower bytes")
    .argument('<STORE>', 'the store directory')
    .requiredOption('--size <N>', `the new size (${SIZE_FORMS})`)
    .action(async (store: string) => {
      const opts = parseCommandLine(cmd, schema, { store })
      const before = await withStore(opts.store, {}, async (s) => {
        const size = s.size
        await s.truncate(opts.size)
        return size
      })
      await writeTo(io.stdout, `size ${describeBytes(opts.size)}, was ${describeBytes(before)}\n`)
    })
  return examples(cmd, ['pagecow truncate vm1.cow --size 40G'])
}
