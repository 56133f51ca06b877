// `pagecow symlink STORE TARGET PATH`: make a symlink in a tree store (its target is stored verbatim).
import { z } from 'zod'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand } from '../command.js'
import { commonFlags, parseCommandLine } from '../options.js'
import { withTreeStore } from '../with-any-store.js'
import { escapeName } from '../escape-name.js'

const schema = z.strictObject({ store: z.string().min(1), target: z.string().min(1), path: z.string().min(1), ...commonFlags })

export function symlinkCommand(io: CliIo) {
  const cmd = newCommand('symlink', io)
    .summary('make a symlink in a tree store')
    .description('make PATH a symlink to TARGET; the store never follows it, TARGET is kept as written')
    .argument('<STORE>', 'the store directory')
    .argument('<TARGET>', 'what the link points to')
    .argument('<PATH>', 'the link to make')
    .action(async (store: string, target: string, path: string) => {
      const opts = parseCommandLine(cmd, schema, { store, target, path })
      await withTreeStore(opts.store, {}, 'symlink', (s) => s.symlink(opts.target, opts.path))
      await writeTo(io.stdout, `made ${escapeName(opts.path)} -> ${escapeName(opts.target)}\n`)
    })
  return examples(cmd, ['pagecow symlink root.cow /usr/bin/python3 /usr/bin/python'])
}
