// `pagecow fsck STORE`: check a store without changing it; exit 4 (EXIT.NOT_CLEAN) when it is not
// clean. `--repair` first gives back upper space no page owns (the only repair there is: damage
// is reported, never rewritten), then checks.
import { z } from 'zod'
import { checkStore, type FsckReport } from '../../image/fsck.js'
import { repairStore } from '../../store/repair-store.js'
import type { TreeFsckReport } from '../../tree/fsck.js'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand } from '../command.js'
import { formatSize } from '../format-size.js'
import { NotCleanError } from '../not-clean-error.js'
import { commonFlags, parseCommandLine } from '../options.js'
import { startProgress } from '../progress.js'

const schema = z.strictObject({ store: z.string().min(1), json: z.boolean().optional(), quick: z.boolean().optional(), repair: z.boolean().optional(), ...commonFlags })

export function fsckCommand(io: CliIo) {
  const cmd = newCommand('fsck', io)
    .summary('check a store (every page against its checksum); exit 4 if it is not clean')
    .description(
      'check the database and the checksum of every record, the generation (no lost commits), the page maps, every DATA page against its checksum and its upper space, and the lower (fingerprint, or the recorded objects of a tree); changes nothing unless --repair. Exit 0 when the store is clean, 4 when problems were found (each printed), 1 when the check could not run',
    )
    .argument('<STORE>', 'the store directory')
    .option('--quick', 'check the records only, not the bytes of every DATA page')
    .option('--repair', 'first give back upper space that no page owns (takes the store\'s lock; never changes data or records), then check')
    .option('--json', 'print the report as JSON (also when problems are found)')
    .action(async (store: string) => {
      const opts = parseCommandLine(cmd, schema, { store })
      const repair = opts.repair ? await repairStore(opts.store) : undefined
      if (repair && !opts.json) await writeTo(io.stdout, repair.actions.map((a) => `repaired  ${a}\n`).join(''))
      let progress: ReturnType<typeof startProgress> | undefined
      const report = await checkStore(opts.store, {
        quick: opts.quick === true,
        onProgress: (p) => {
          progress ??= startProgress(io, 'fsck', p.total)
          progress.update(p.done)
        },
      }).finally(() => progress?.stop())
      if (opts.json) await writeTo(io.stdout, `${JSON.stringify(repair ? { ...report, repair } : report, null, 2)}\n`)
      else if (report.clean) await writeTo(io.stdout, `${report.path}: clean (${summary(report)})\n`)
      else await writeTo(io.stdout, report.problems.map((p) => `${p.code}  ${p.message}\n`).join(''))
      if (!opts.json && report.checked.unownedBytes > 0) {
        await writeTo(io.stdout, `${formatSize(report.checked.unownedBytes)} of upper space is owned by no committed page (writes never flushed); if no writer has the store open, \`pagecow fsck --repair\` gives it back\n`)
      }
      const first = report.problems[0]
      if (first) {
        const count = plural(report.problems.length, 'problem')
        throw new NotCleanError(first.code, `${report.path} is not clean: ${count}, the first: ${first.message}`)
      }
    })
  return examples(cmd, ['pagecow fsck vm1.cow', 'pagecow fsck vm1.cow --quick --json', 'pagecow fsck vm1.cow --repair'])
}

function summary(report: FsckReport): string {
  const c = report.checked
  const tree = 'kind' in report && report.kind === 'tree' ? `${plural((report as TreeFsckReport).checked.inodes, 'inode')}, ${plural((report as TreeFsckReport).checked.entries, 'entry')}, ` : ''
  const data = report.dataChecked ? `, ${plural(c.verifiedPages, 'page')} verified against ${c.verifiedPages === 1 ? 'its checksum' : 'their checksums'}` : ', page bytes not read (--quick)'
  const flux = c.inFluxPages > 0 ? `, ${plural(c.inFluxPages, 'page')} being rewritten when the writer stopped (re-summed at its next writable open)` : ''
  return `checked ${tree}${plural(c.chunks, 'chunk')}, ${plural(c.dataPages, 'data page')}, ${plural(c.zeroPages, 'zero page')}${data}${flux}`
}

function plural(n: number, noun: string): string {
  if (n === 1) return `${n} ${noun}`
  return noun.endsWith('y') ? `${n} ${noun.slice(0, -1)}ies` : `${n} ${noun}s`
}
