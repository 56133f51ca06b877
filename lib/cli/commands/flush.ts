// `pagecow flush STORE`: make every completed write durable (every command also flushes on exit).
import { z } from 'zod'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand } from '../command.js'
import { commonFlags, parseCommandLine } from '../options.js'
import { withAnyStore } from '../with-any-store.js'

const schema = z.strictObject({ store: z.string().min(1), ...commonFlags })

export function flushCommand(io: CliIo) {
  const cmd = newCommand('flush', io)
    .summary('make earlier writes durable')
    .description('commit the writes of earlier runs that are not durable yet (every pagecow command already flushes when it ends)')
    .argument('<STORE>', 'the store directory')
    .action(async (store: string) => {
      const opts = parseCommandLine(cmd, schema, { store })
      const path = await withAnyStore(opts.store, {}, async (s) => {
        await s.flush()
        return s.path
      })
      await writeTo(io.stdout, `flushed ${path}\n`)
    })
  return examples(cmd, ['pagecow flush vm1.cow'])
}
