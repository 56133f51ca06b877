// `pagecow chmod STORE MODE PATH`: permission bits of an object of a tree store (metadata only).
import { z } from 'zod'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand } from '../command.js'
import { commonFlags, parseCommandLine } from '../options.js'
import { modeValue } from '../tree-options.js'
import { withTreeStore } from '../with-any-store.js'

const schema = z.strictObject({ store: z.string().min(1), mode: modeValue, path: z.string().min(1), ...commonFlags })

export function chmodCommand(io: CliIo) {
  const cmd = newCommand('chmod', io)
    .summary('set the permission bits of an object of a tree store')
    .description('set the mode of PATH to MODE (octal, e.g. 644 or 4755); a lower file is not copied, only its metadata is recorded')
    .argument('<STORE>', 'the store directory')
    .argument('<MODE>', 'octal permission bits, 0 to 7777')
    .argument('<PATH>', 'the object')
    .action(async (store: string, mode: string, path: string) => {
      const opts = parseCommandLine(cmd, schema, { store, mode, path })
      await withTreeStore(opts.store, {}, 'chmod', (s) => s.chmod(opts.path, opts.mode))
      await writeTo(io.stdout, `mode of ${opts.path} set to 0${opts.mode.toString(8)}\n`)
    })
  return examples(cmd, ['pagecow chmod root.cow 600 /etc/shadow', 'pagecow chmod root.cow 4755 /usr/bin/tool'])
}
