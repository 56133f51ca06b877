// `pagecow freeze STORE [PATH]`: make the writers of the image (or of file PATH of a tree) wait
// until `pagecow thaw`, on a store a server runs (a freeze lives as long as the store is open).
import { z } from 'zod'
import { callServer } from '../../control/call-store.js'
import { freezeMethod } from '../../control/methods/freeze.js'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand } from '../command.js'
import { formatJson } from '../json.js'
import { commonFlags, parseCommandLine } from '../options.js'

const schema = z.strictObject({
  store: z.string().min(1),
  path: z.string().min(1).optional(),
  timeout: z.coerce.number().int().min(0).max(2 ** 31 - 1).optional(),
  json: z.boolean().optional(),
  ...commonFlags,
})

export function freezeCommand(io: CliIo) {
  const cmd = newCommand('freeze', io)
    .summary('make the writers of a served image or file wait until thaw')
    .description(
      'freeze the image (or file PATH of a tree store) of a store served by `pagecow mount` or `pagecow serve`: its writers wait, reads go on, until `pagecow thaw`. ' +
        'Returns once no write of it is under way. Not persistent: the server thaws when it stops.',
    )
    .argument('<STORE>', 'the store directory')
    .argument('[PATH]', 'tree stores: the file')
    .option('--timeout <MS>', 'a writer waits at most this many milliseconds, then fails (EFROZEN; ETIMEDOUT through FUSE, EIO through NBD)')
    .option('--json', 'print what is frozen as JSON')
    .action(async (store: string, path: string | undefined) => {
      const opts = parseCommandLine(cmd, schema, path === undefined ? { store } : { store, path })
      const { frozen } = await callServer(opts.store, freezeMethod, { ...(opts.path === undefined ? {} : { path: opts.path }), ...(opts.timeout === undefined ? {} : { timeoutMs: opts.timeout }) })
      await writeTo(io.stdout, opts.json ? formatJson(frozen, 2) : `froze ${opts.path ?? 'the image'} (${frozen.length} frozen; \`pagecow thaw\` lets the writers go on)\n`)
    })
  return examples(cmd, ['pagecow freeze vm1.cow && pagecow export … && pagecow thaw vm1.cow', 'pagecow freeze root.cow /var/lib/db/data --timeout 30000'])
}
