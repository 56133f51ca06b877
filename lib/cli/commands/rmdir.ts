// `pagecow rmdir STORE PATH`: remove an empty directory (empty in the merged view) of a tree store.
import { z } from 'zod'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand } from '../command.js'
import { commonFlags, parseCommandLine } from '../options.js'
import { withTreeStore } from '../with-any-store.js'
import { escapeName } from '../escape-name.js'

const schema = z.strictObject({ store: z.string().min(1), path: z.string().min(1), ...commonFlags })

export function rmdirCommand(io: CliIo) {
  const cmd = newCommand('rmdir', io)
    .summary('remove an empty directory from a tree store')
    .description('remove the directory PATH, which must be empty in the merged view (ENOTEMPTY otherwise)')
    .argument('<STORE>', 'the store directory')
    .argument('<PATH>', 'the directory to remove')
    .action(async (store: string, path: string) => {
      const opts = parseCommandLine(cmd, schema, { store, path })
      await withTreeStore(opts.store, {}, 'rmdir', (s) => s.rmdir(opts.path))
      await writeTo(io.stdout, `removed ${escapeName(opts.path)}\n`)
    })
  return examples(cmd, ['pagecow rmdir root.cow /var/cache/old'])
}
