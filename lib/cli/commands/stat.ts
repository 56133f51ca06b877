// `pagecow stat STORE PATH`: one object of a tree store, as lstat sees it.
import { z } from 'zod'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand } from '../command.js'
import { commonFlags, parseCommandLine } from '../options.js'
import { formatJson } from '../json.js'
import { formatStat } from '../tree-format.js'
import { withTreeStore } from '../with-any-store.js'

const schema = z.strictObject({ store: z.string().min(1), path: z.string().min(1), json: z.boolean().optional(), ...commonFlags })

export function statCommand(io: CliIo) {
  const cmd = newCommand('stat', io)
    .summary('show one object of a tree store')
    .description('show type, size, inode number, mode, links, owner and times of PATH (a symlink is not followed)')
    .argument('<STORE>', 'the store directory')
    .argument('<PATH>', 'the object in the tree')
    .option('--json', 'print the stat fields as JSON')
    .action(async (store: string, path: string) => {
      const opts = parseCommandLine(cmd, schema, { store, path })
      const { stat, target } = await withTreeStore(opts.store, { readOnly: true }, 'stat', async (s) => {
        const stat = await s.stat(opts.path)
        return { stat, target: stat.type === 'symlink' ? await s.readlink(opts.path) : undefined }
      })
      await writeTo(io.stdout, opts.json ? formatJson(target === undefined ? stat : { ...stat, target }, 2) : formatStat(opts.path, stat, target))
    })
  return examples(cmd, ['pagecow stat root.cow /etc/hosts', 'pagecow stat root.cow /bin/sh --json'])
}
