// `pagecow inspect STORE [PATH]`: the page map drawn in the terminal, with totals; for a tree store,
// what changed (like git status), or the page map of file PATH.
import { z } from 'zod'
import { PagecowError } from '../../errors.js'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand } from '../command.js'
import { formatInspect, inspectStore } from '../inspect-report.js'
import { commonFlags, countValue, parseCommandLine } from '../options.js'
import { DEFAULT_WIDTH, MAX_ROWS } from '../page-map-view.js'
import { formatTreeFile, formatTreeInspect, inspectTree, inspectTreeFile } from '../tree-inspect-report.js'
import { withAnyStore } from '../with-any-store.js'

const schema = z.strictObject({
  store: z.string().min(1),
  path: z.string().min(1).optional(),
  json: z.boolean().optional(),
  width: countValue(1, 4096).optional(),
  ...commonFlags,
})

export function inspectCommand(io: CliIo) {
  const cmd = newCommand('inspect', io)
    .summary('draw the page map and the totals; for a tree, what changed')
    .description('draw the page map (which pages are data, zero, lower or hole) and the totals; for a tree store, list what changed like git status, or with PATH draw that file\'s page map')
    .argument('<STORE>', 'the store directory')
    .argument('[PATH]', 'tree stores: the file whose page map to draw')
    .option('--width <N>', `cells per row (default ${DEFAULT_WIDTH}); the map has at most ${MAX_ROWS} rows`)
    .option('--json', 'print {info, map} as JSON (a tree store: {info, changes}); the cells are one state name each')
    .action(async (store: string, path: string | undefined) => {
      const opts = parseCommandLine(cmd, schema, path === undefined ? { store } : { store, path })
      const text = await withAnyStore(opts.store, { readOnly: true }, async (s) => {
        const json = (report: unknown) => `${JSON.stringify(report, null, 2)}\n`
        if (s.kind === 'image') {
          if (opts.path !== undefined) throw new PagecowError('EINVAL', `inspect: ${s.path} is an image store; it has no paths (drop ${JSON.stringify(opts.path)})`)
          const report = inspectStore(s, opts.width)
          return opts.json ? json(report) : formatInspect(report)
        }
        if (opts.path === undefined) {
          const report = inspectTree(s)
          return opts.json ? json(report) : formatTreeInspect(report)
        }
        const report = await inspectTreeFile(s, opts.path, opts.width)
        return opts.json ? json(report) : formatTreeFile(report)
      })
      await writeTo(io.stdout, text)
    })
  return examples(cmd, ['pagecow inspect vm1.cow', 'pagecow inspect vm1.cow --width 100', 'pagecow inspect vm1.cow --json | jq .info.pages', 'pagecow inspect root.cow', 'pagecow inspect root.cow /var/lib/big.db'])
}
