// `pagecow unmark STORE NAME`: remove a mark; the marks before it keep what changed since them.
import { z } from 'zod'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand } from '../command.js'
import { commonFlags, parseCommandLine } from '../options.js'
import { callStore } from '../../control/call-store.js'
import { unmarkMethod } from '../../control/methods/marks.js'

const schema = z.strictObject({ store: z.string().min(1), name: z.string(), ...commonFlags })

export function unmarkCommand(io: CliIo) {
  const cmd = newCommand('unmark', io)
    .summary('remove a mark')
    .description('remove the mark NAME; the changes recorded since it stay recorded for the mark before it (if it was the oldest, the records only it needed are freed)')
    .argument('<STORE>', 'the store directory')
    .argument('<NAME>', 'the mark to remove')
    .action(async (store: string, name: string) => {
      const opts = parseCommandLine(cmd, schema, { store, name })
      const { path } = await callStore(opts.store, unmarkMethod, { name: opts.name })
      await writeTo(io.stdout, `removed mark ${opts.name} from ${path}\n`)
    })
  return examples(cmd, ['pagecow unmark vm1.cow backup-1'])
}
