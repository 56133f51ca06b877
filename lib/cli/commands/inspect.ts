// `pagecow inspect STORE [PATH]`: the page map drawn in the terminal, with totals; for a tree store,
// what changed (like git status), or the page map of file PATH.
import { z } from 'zod'
import { callStore } from '../../control/call-store.js'
import { inspectMethod } from '../../control/methods/inspect.js'
import type { AnyInspectReport } from '../../inspect-report.js'
import { DEFAULT_WIDTH, MAX_ROWS } from '../../page-map-view.js'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand } from '../command.js'
import { formatInspect } from '../inspect-report.js'
import { commonFlags, countValue, parseCommandLine } from '../options.js'
import { formatTreeFile, formatTreeInspect } from '../tree-inspect-report.js'

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
    .description('draw the page map (which pages are data, zero, lower or hole) and the totals; for a tree store, list what changed like git status, or with PATH draw that file\'s page map. A store served by `pagecow mount` or `pagecow serve` is reported by its server (writes not yet flushed included)')
    .argument('<STORE>', 'the store directory')
    .argument('[PATH]', 'tree stores: the file whose page map to draw')
    .option('--width <N>', `cells per row (default ${DEFAULT_WIDTH}); the map has at most ${MAX_ROWS} rows`)
    .option('--json', 'print {info, map} as JSON (a tree store: {info, changes}); the cells are one state name each')
    .action(async (store: string, path: string | undefined) => {
      const opts = parseCommandLine(cmd, schema, path === undefined ? { store } : { store, path })
      // A served store is inspected by its server: what it holds now, unflushed writes included.
      const report = await callStore(opts.store, inspectMethod, { path: opts.path, width: opts.width })
      const text = opts.json ? `${JSON.stringify(report, null, 2)}\n` : format(report)
      await writeTo(io.stdout, text)
    })
  return examples(cmd, ['pagecow inspect vm1.cow', 'pagecow inspect vm1.cow --width 100', 'pagecow inspect vm1.cow --json | jq .info.pages', 'pagecow inspect root.cow', 'pagecow inspect root.cow /var/lib/big.db'])
}

function format(report: AnyInspectReport): string {
  if ('changes' in report) return formatTreeInspect(report)
  return 'kind' in report.info ? formatInspect(report as Extract<AnyInspectReport, { info: { kind: 'image' } }>) : formatTreeFile(report as Extract<AnyInspectReport, { info: { ino: number } }>)
}
