// `pagecow inspect STORE`: the page map drawn in the terminal, with totals.
import { z } from 'zod'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand } from '../command.js'
import { formatInspect, inspectStore } from '../inspect-report.js'
import { commonFlags, countValue, parseCommandLine } from '../options.js'
import { DEFAULT_WIDTH, MAX_ROWS } from '../page-map-view.js'
import { withStore } from '../with-store.js'

const schema = z.strictObject({
  store: z.string().min(1),
  json: z.boolean().optional(),
  width: countValue(1, 4096).optional(),
  ...commonFlags,
})

export function inspectCommand(io: CliIo) {
  const cmd = newCommand('inspect', io)
    .summary('draw the page map and the totals')
    .description('draw the page map (which pages are data, zero, lower or hole) and the totals')
    .argument('<STORE>', 'the store directory')
    .option('--width <N>', `cells per row (default ${DEFAULT_WIDTH}); the map has at most ${MAX_ROWS} rows`)
    .option('--json', 'print {info, map} as JSON: the store info and the cells, one state name each')
    .action(async (store: string) => {
      const opts = parseCommandLine(cmd, schema, { store })
      const report = await withStore(opts.store, { readOnly: true }, async (s) => inspectStore(s, opts.width))
      await writeTo(io.stdout, opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatInspect(report))
    })
  return examples(cmd, ['pagecow inspect vm1.cow', 'pagecow inspect vm1.cow --width 100', 'pagecow inspect vm1.cow --json | jq .info.pages'])
}
