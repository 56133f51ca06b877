// `pagecow mv STORE FROM TO`: rename in a tree store; lower files and directories move without copying.
import { z } from 'zod'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand } from '../command.js'
import { commonFlags, parseCommandLine } from '../options.js'
import { withTreeStore } from '../with-any-store.js'
import { escapeName } from '../escape-name.js'

const schema = z
  .strictObject({
    store: z.string().min(1),
    from: z.string().min(1),
    to: z.string().min(1),
    /** commander's negatable `--no-clobber`: true unless given. */
    clobber: z.boolean().optional(),
    exchange: z.boolean().optional(),
    ...commonFlags,
  })
  .refine((o) => !(o.clobber === false && o.exchange), { message: '--no-clobber and --exchange exclude each other', path: ['exchange'] })

export function mvCommand(io: CliIo) {
  const cmd = newCommand('mv', io)
    .summary('rename a file or directory of a tree store')
    .description('rename FROM to TO, replacing TO if it exists (a directory only by an empty one); no data is copied')
    .argument('<STORE>', 'the store directory')
    .argument('<FROM>', 'the object to rename')
    .argument('<TO>', 'its new path (not an existing directory to move into: name the new path)')
    .option('-n, --no-clobber', 'fail (EEXIST) if TO exists (RENAME_NOREPLACE)')
    .option('--exchange', 'swap FROM and TO, which must both exist (RENAME_EXCHANGE)')
    .action(async (store: string, from: string, to: string) => {
      const opts = parseCommandLine(cmd, schema, { store, from, to })
      await withTreeStore(opts.store, {}, 'mv', (s) => s.rename(opts.from, opts.to, { noReplace: opts.clobber === false, exchange: opts.exchange === true }))
      await writeTo(io.stdout, `${opts.exchange ? 'exchanged' : 'renamed'} ${escapeName(opts.from)} ${opts.exchange ? 'and' : 'to'} ${escapeName(opts.to)}\n`)
    })
  return examples(cmd, ['pagecow mv root.cow /etc/motd /etc/motd.old', 'pagecow mv root.cow /usr/local /opt/local -n', 'pagecow mv root.cow /a /b --exchange'])
}
