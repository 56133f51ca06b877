// `pagecow rm STORE PATH [-r]`: remove from a tree store; lower objects are hidden, never deleted.
import { z } from 'zod'
import { isPagecowError, PagecowError } from '../../errors.js'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand } from '../command.js'
import { commonFlags, parseCommandLine } from '../options.js'
import { withTreeStore } from '../with-any-store.js'
import { escapeName } from '../escape-name.js'

const schema = z.strictObject({ store: z.string().min(1), path: z.string().min(1), recursive: z.boolean().optional(), ...commonFlags })

export function rmCommand(io: CliIo) {
  const cmd = newCommand('rm', io)
    .summary('remove a file (or, with -r, a directory) from a tree store')
    .description('remove PATH; a lower object is hidden by a whiteout and the lower is left untouched')
    .argument('<STORE>', 'the store directory')
    .argument('<PATH>', 'what to remove')
    .option('-r, --recursive', 'remove a directory and everything in it')
    .action(async (store: string, path: string) => {
      const opts = parseCommandLine(cmd, schema, { store, path })
      const removed = await withTreeStore(opts.store, {}, 'rm', async (s) => {
        try {
          return await s.rm(opts.path, { recursive: opts.recursive === true })
        } catch (err) {
          if (!opts.recursive && isPagecowError(err, 'EISDIR')) throw new PagecowError('EISDIR', `rm: ${escapeName(opts.path)} is a directory; remove it and everything in it with -r`, { cause: err })
          throw err
        }
      })
      await writeTo(io.stdout, `removed ${escapeName(opts.path)}${removed > 1 ? ` (${removed} objects)` : ''}\n`)
    })
  return examples(cmd, ['pagecow rm root.cow /etc/motd', 'pagecow rm root.cow /usr/share/doc -r'])
}
