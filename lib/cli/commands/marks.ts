// `pagecow marks STORE`: list the marks, oldest first.
import { z } from 'zod'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand } from '../command.js'
import { formatJson } from '../json.js'
import { commonFlags, parseCommandLine } from '../options.js'
import { callStore } from '../../control/call-store.js'
import { marksMethod } from '../../control/methods/marks.js'

const schema = z.strictObject({ store: z.string().min(1), json: z.boolean().optional(), ...commonFlags })

export function marksCommand(io: CliIo) {
  const cmd = newCommand('marks', io)
    .summary('list the marks')
    .description('list the marks of the store, oldest first, with when each was taken')
    .argument('<STORE>', 'the store directory')
    .option('--json', 'print the marks as a JSON array')
    .action(async (store: string) => {
      const opts = parseCommandLine(cmd, schema, { store })
      const marks = await callStore(opts.store, marksMethod, {})
      if (opts.json) return writeTo(io.stdout, formatJson(marks, 2))
      const width = Math.max(4, ...marks.map((m) => m.name.length))
      const lines = marks.map((m) => `${m.name.padEnd(width)}  ${m.created}\n`)
      await writeTo(io.stdout, `${'NAME'.padEnd(width)}  CREATED\n${lines.join('')}`)
    })
  return examples(cmd, ['pagecow marks vm1.cow', 'pagecow marks vm1.cow --json'])
}
