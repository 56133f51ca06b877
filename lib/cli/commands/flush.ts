// `pagecow flush STORE`: make every completed write durable (every command also flushes on exit).
import { z } from 'zod'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand } from '../command.js'
import { commonFlags, parseCommandLine } from '../options.js'
import { callStore } from '../../control/call-store.js'
import { flushMethod } from '../../control/methods/flush.js'

const schema = z.strictObject({ store: z.string().min(1), ...commonFlags })

export function flushCommand(io: CliIo) {
  const cmd = newCommand('flush', io)
    .summary('make earlier writes durable')
    .description('commit the writes of earlier runs that are not durable yet (every pagecow command already flushes when it ends); a store served by `pagecow mount` or `pagecow serve` is flushed by its server, through its control socket')
    .argument('<STORE>', 'the store directory')
    .action(async (store: string) => {
      const opts = parseCommandLine(cmd, schema, { store })
      // A store a server holds (`pagecow mount`, `pagecow serve`) is flushed by the server.
      const { path } = await callStore(opts.store, flushMethod, {})
      await writeTo(io.stdout, `flushed ${path}\n`)
    })
  return examples(cmd, ['pagecow flush vm1.cow', 'pagecow mount vm1.cow /mnt/vm1 && cp disk.raw /mnt/vm1/disk.raw && pagecow flush vm1.cow'])
}
