// `pagecow changes STORE [PATH] --since NAME`: what changed since a mark. For the image (or a file
// of a tree store) the changed extents; for a whole tree store the changed paths, like
// `git diff --stat`.
import { z } from 'zod'
import { totalsOf, type ChangedExtent, type TreeChangeSince } from '../../index.js'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand } from '../command.js'
import { formatSize } from '../format-size.js'
import { formatJson } from '../json.js'
import { commonFlags, parseCommandLine } from '../options.js'
import { changedMapLines } from '../qemu-map.js'
import { callStore } from '../../control/call-store.js'
import { changesMethod } from '../../control/methods/changes.js'

const schema = z
  .strictObject({
    store: z.string().min(1),
    path: z.string().min(1).optional(),
    since: z.string({ error: 'name the mark: --since NAME' }),
    output: z.enum(['json', 'human']).optional(),
    json: z.boolean().optional(),
    ...commonFlags,
  })
  .refine((o) => !(o.json && o.output !== undefined), { message: '--json and --output contradict each other (--json: one object with totals; --output=json: qemu-img map entries)', path: ['output'] })

export function changesCommand(io: CliIo) {
  const cmd = newCommand('changes', io)
    .summary('what changed since a mark')
    .description(
      'list what changed since the mark NAME: for an image (or file PATH of a tree store) the changed extents, each as what it reads now ' +
        '(written, zeroed, lower, truncated); for a tree store without PATH the changed paths (created, removed, replaced, renamed, modified, metadata). ' +
        'Pages are whole: a page rewritten with the same bytes is listed too, never less than what differs.',
    )
    .argument('<STORE>', 'the store directory')
    .argument('[PATH]', 'tree stores: one file')
    .option('--since <NAME>', 'the mark to count from (`pagecow marks` lists them)')
    .option('--json', 'one JSON object: the extents (or paths) with totals')
    .option('--output <FORMAT>', '"human" (default) or "json": the extents as qemu-img map --output=json entries, each with a "change" field')
    .action(async (store: string, path: string | undefined) => {
      const opts = parseCommandLine(cmd, schema, path === undefined ? { store } : { store, path })
      // A served store answers through its server: what it has not flushed yet is included.
      const result = await callStore(opts.store, changesMethod, { since: opts.since, ...(opts.path === undefined ? {} : { path: opts.path }) })
      if ('paths' in result) {
        await writeTo(io.stdout, opts.json || opts.output === 'json' ? formatJson({ since: opts.since, changes: result.paths }, 2) : treeLines(result.paths))
        return
      }
      const list = result.extents
      if (opts.output === 'json') {
        for (const piece of changedMapLines(list)) await writeTo(io.stdout, piece)
        return
      }
      const totals = totalsOf(list)
      if (opts.json) return writeTo(io.stdout, formatJson({ since: opts.since, ...(opts.path === undefined ? {} : { path: opts.path }), totals, extents: list }, 2))
      await writeTo(io.stdout, extentLines(list) + totalsLine(totals))
    })
  return examples(cmd, [
    'pagecow changes vm1.cow --since backup-1',
    'pagecow changes vm1.cow --since backup-1 --output=json',
    'pagecow changes root.cow --since boot',
    'pagecow changes root.cow /var/lib/db.sqlite --since boot --json',
  ])
}

function extentLines(list: ChangedExtent[]): string {
  let out = `${'START'.padStart(16)} ${''.padEnd(10)} ${'LENGTH'.padStart(16)} ${''.padEnd(10)} CHANGE\n`
  for (const e of list) out += `${String(e.start).padStart(16)} ${formatSize(e.start).padEnd(10)} ${String(e.length).padStart(16)} ${formatSize(e.length).padEnd(10)} ${e.change}\n`
  return out
}

function totalsLine(t: ReturnType<typeof totalsOf>): string {
  return `${t.extents} extents changed: ${formatSize(t.written)} written, ${formatSize(t.zeroed)} zeroed, ${formatSize(t.lower)} lower again, ${formatSize(t.truncated)} truncated\n`
}

function treeLines(changes: TreeChangeSince[]): string {
  let out = ''
  for (const c of changes) {
    const what = c.status === 'renamed' ? `${c.from} -> ${c.path}` : c.path
    out += `${c.status.padEnd(9)} ${what}${c.changedBytes === undefined ? '' : ` (${formatSize(c.changedBytes)} changed)`}\n`
  }
  return `${out}${changes.length} paths changed\n`
}
