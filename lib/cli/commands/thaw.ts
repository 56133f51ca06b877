// `pagecow thaw STORE [PATH]`: let the writers `pagecow freeze` holds go on.
import { z } from 'zod'
import { callServer } from '../../control/call-store.js'
import { thawMethod } from '../../control/methods/freeze.js'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand } from '../command.js'
import { formatJson } from '../json.js'
import { commonFlags, parseCommandLine } from '../options.js'

const schema = z.strictObject({ store: z.string().min(1), path: z.string().min(1).optional(), json: z.boolean().optional(), ...commonFlags })

export function thawCommand(io: CliIo) {
  const cmd = newCommand('thaw', io)
    .summary('let the writers of a frozen image or file go on')
    .description('thaw the image (or file PATH of a tree store) of a served store: the writers waiting land, in the order they came')
    .argument('<STORE>', 'the store directory')
    .argument('[PATH]', 'tree stores: the file')
    .option('--json', 'print what is still frozen as JSON')
    .action(async (store: string, path: string | undefined) => {
      const opts = parseCommandLine(cmd, schema, path === undefined ? { store } : { store, path })
      const { frozen } = await callServer(opts.store, thawMethod, opts.path === undefined ? {} : { path: opts.path })
      await writeTo(io.stdout, opts.json ? formatJson(frozen, 2) : `thawed ${opts.path ?? 'the image'} (${frozen.length} still frozen)\n`)
    })
  return examples(cmd, ['pagecow thaw vm1.cow', 'pagecow thaw root.cow /var/lib/db/data'])
}
