// `pagecow ls STORE [PATH]`: the merged listing of a directory of a tree store, like ls -l.
import { z } from 'zod'
import type { TreeStat, TreeStore } from '../../index.js'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand } from '../command.js'
import { commonFlags, parseCommandLine } from '../options.js'
import { formatJson } from '../json.js'
import { formatListing } from '../tree-format.js'
import { withTreeStore } from '../with-any-store.js'

const schema = z.strictObject({ store: z.string().min(1), path: z.string().default('/'), json: z.boolean().optional(), ...commonFlags })

/** One listed object: `pagecow ls --json` prints an array of these. */
interface Listed extends TreeStat {
  name: string
  target?: string
}

export function lsCommand(io: CliIo) {
  const cmd = newCommand('ls', io)
    .summary('list a directory of a tree store (merged view)')
    .description('list PATH (default /) of a tree store: the upper over the lower, removed entries hidden, sorted by name')
    .argument('<STORE>', 'the store directory')
    .argument('[PATH]', 'a directory or file in the tree')
    .option('--json', 'print the entries (name, stat fields, symlink target) as JSON')
    .action(async (store: string, path: string | undefined) => {
      const opts = parseCommandLine(cmd, schema, path === undefined ? { store } : { store, path })
      const listed = await withTreeStore(opts.store, { readOnly: true }, 'ls', (s) => list(s, opts.path))
      await writeTo(io.stdout, opts.json ? formatJson(listed, 2) : listed.map((e) => formatListing(e.name, e, e.target)).join(''))
    })
  return examples(cmd, ['pagecow ls root.cow', 'pagecow ls root.cow /etc', 'pagecow ls root.cow /etc --json | jq ".[].name"'])
}

async function list(store: TreeStore, path: string): Promise<Listed[]> {
  const describe = async (name: string, full: string): Promise<Listed> => {
    const stat = await store.stat(full)
    return { name, ...stat, ...(stat.type === 'symlink' ? { target: await store.readlink(full) } : {}) }
  }
  const stat = await store.stat(path)
  if (stat.type !== 'directory') return [await describe(path, path)]
  const out: Listed[] = []
  let after: string | undefined
  for (;;) {
    const batch = await store.readdir(path, after === undefined ? { limit: 1024 } : { after, limit: 1024 })
    if (batch.length === 0) return out
    for (const entry of batch) out.push(await describe(entry.name, path.endsWith('/') ? path + entry.name : `${path}/${entry.name}`))
    after = batch[batch.length - 1]!.name
  }
}
