// `pagecow mark STORE NAME`: take a mark, a named moment that `changes --since NAME` counts from.
import { z } from 'zod'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand } from '../command.js'
import { formatJson } from '../json.js'
import { commonFlags, parseCommandLine } from '../options.js'
import { resolve } from 'node:path'
import { callStore } from '../../control/call-store.js'
import { markMethod } from '../../control/methods/marks.js'

const schema = z.strictObject({ store: z.string().min(1), name: z.string(), json: z.boolean().optional(), ...commonFlags })

export function markCommand(io: CliIo) {
  const cmd = newCommand('mark', io)
    .summary('take a mark: a named moment to list changes since')
    .description(
      'take the mark NAME: everything written before it is flushed, and every later change (pages, names, metadata) is recorded as changed since it, crash-safely. ' +
        'NAME is letters, digits and _ . : @ + - (up to 128). Many marks may exist at once.',
    )
    .argument('<STORE>', 'the store directory')
    .argument('<NAME>', 'the name of the mark')
    .option('--json', 'print the mark as JSON')
    .action(async (store: string, name: string) => {
      const opts = parseCommandLine(cmd, schema, { store, name })
      // A store a server holds (`pagecow mount`, `pagecow serve`) is marked by the server.
      const mark = await callStore(opts.store, markMethod, { name: opts.name })
      await writeTo(io.stdout, opts.json ? formatJson(mark, 2) : `marked ${resolve(opts.store)} as ${mark.name} (${mark.created})\n`)
    })
  return examples(cmd, ['pagecow mark vm1.cow backup-1', 'pagecow changes vm1.cow --since backup-1'])
}
