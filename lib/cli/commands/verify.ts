// `pagecow verify STORE`: recheck a store page by page (a bound lower, the upper's DATA pages,
// copy-up bases); exit 4 (EXIT.NOT_CLEAN) when a page changed. `--record` binds the lower.
import { z } from 'zod'
import { bindLower } from '../../integrity/bind-lower.js'
import { verifyStore } from '../../integrity/verify-store.js'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand } from '../command.js'
import { formatSize } from '../format-size.js'
import { NotCleanError } from '../not-clean-error.js'
import { commonFlags, parseCommandLine } from '../options.js'
import { startProgress, type Progress } from '../progress.js'

const schema = z.strictObject({ store: z.string().min(1), record: z.boolean().optional(), json: z.boolean().optional(), ...commonFlags })

export function verifyCommand(io: CliIo) {
  const cmd = newCommand('verify', io)
    .summary('recheck every page against its recorded sum; --record binds the lower')
    .description(
      "check a bound lower's every page against the sums recorded for it, the upper's every DATA page against its checksum, and the lower page under each partially copied-up page; changes nothing. An unbound lower is checked by its fingerprint only. Exit 0 when nothing changed, 4 when pages changed (each printed: ESTALE for the lower, ECORRUPT for the upper), 1 when the check could not run. With --record: hash every lower page (it reads the whole lower once) and bind the store to it, so that reads fail with ESTALE rather than serve a lower page that changed",
    )
    .argument('<STORE>', 'the store directory')
    .option('--record', 'record the sum of every lower page and bind the store to its lower (needs the writer lock)')
    .option('--json', 'print the report as JSON (also when pages changed)')
    .action(async (store: string) => {
      const opts = parseCommandLine(cmd, schema, { store })
      let progress: Progress | undefined
      const onProgress = ({ doneBytes, totalBytes }: { doneBytes: number; totalBytes: number }) => {
        progress ??= startProgress(io, opts.record ? 'record' : 'verify', totalBytes)
        progress.update(doneBytes)
      }
      if (opts.record) {
        let result
        try {
          result = await bindLower(opts.store, { onProgress })
        } finally {
          progress?.stop()
        }
        const files = result.kind === 'tree' ? ` in ${result.files} file${result.files === 1 ? '' : 's'}` : ''
        await writeTo(io.stdout, opts.json ? `${JSON.stringify(result, null, 2)}\n` : `${result.path}: bound, ${result.pages} lower pages (${formatSize(result.bytes)})${files} recorded\n`)
        return
      }
      let report
      try {
        report = await verifyStore(opts.store, { onProgress })
      } finally {
        progress?.stop()
      }
      const c = report.checked
      if (opts.json) await writeTo(io.stdout, `${JSON.stringify(report, null, 2)}\n`)
      else {
        const lower = report.bound ? `${c.lowerPages} lower pages` : 'the lower by its fingerprint only (not bound: `pagecow verify --record` binds it)'
        const lines = report.problems.map((p) => `${p.code}  ${p.message}\n`)
        if (report.problemCount > report.problems.length) lines.push(`… and ${report.problemCount - report.problems.length} more\n`)
        if (report.clean) lines.push(`${report.path}: clean (checked ${lower}, ${c.upperPages} data pages, ${c.bases} copy-up bases)\n`)
        await writeTo(io.stdout, lines.join(''))
      }
      const first = report.problems[0]
      if (first) throw new NotCleanError(first.code, `${report.path} changed: ${report.problemCount} problem${report.problemCount === 1 ? '' : 's'}, the first: ${first.message}`)
    })
  return examples(cmd, ['pagecow verify vm1.cow', 'pagecow verify vm1.cow --record', 'pagecow verify vm1.cow --json'])
}
