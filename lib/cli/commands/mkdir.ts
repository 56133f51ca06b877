// `pagecow mkdir STORE PATH`: make a directory in a tree store.
import { z } from 'zod'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand } from '../command.js'
import { commonFlags, parseCommandLine } from '../options.js'
import { modeValue } from '../tree-options.js'
import { withTreeStore } from '../with-any-store.js'
import { escapeName } from '../escape-name.js'

const schema = z.strictObject({ store: z.string().min(1), path: z.string().min(1), mode: modeValue.optional(), ...commonFlags })

export function mkdirCommand(io: CliIo) {
  const cmd = newCommand('mkdir', io)
    .summary('make a directory in a tree store')
    .description('make the directory PATH; made where the lower had a removed directory, it hides the lower content (opaque)')
    .argument('<STORE>', 'the store directory')
    .argument('<PATH>', 'the directory to make')
    .option('--mode <OCTAL>', 'permission bits, e.g. 755 (default 755)')
    .action(async (store: string, path: string) => {
      const opts = parseCommandLine(cmd, schema, { store, path })
      await withTreeStore(opts.store, {}, 'mkdir', (s) => s.mkdir(opts.path, opts.mode === undefined ? {} : { mode: opts.mode }))
      await writeTo(io.stdout, `made ${escapeName(opts.path)}\n`)
    })
  return examples(cmd, ['pagecow mkdir root.cow /srv/www', 'pagecow mkdir root.cow /private --mode 700'])
}
