// `pagecow fsck STORE`: check a store without changing it; exit 4 (EXIT.NOT_CLEAN) when it is not clean.
import { z } from 'zod'
import { checkStore } from '../../image/fsck.js'
import type { TreeFsckReport } from '../../tree/fsck.js'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand } from '../command.js'
import { NotCleanError } from '../not-clean-error.js'
import { commonFlags, parseCommandLine } from '../options.js'

const schema = z.strictObject({ store: z.string().min(1), json: z.boolean().optional(), ...commonFlags })

export function fsckCommand(io: CliIo) {
  const cmd = newCommand('fsck', io)
    .summary('check a store; exit 4 if it is not clean')
    .description(
      'check the database, the page maps, the upper files and the lower (fingerprint, or the recorded objects of a tree); changes nothing. Exit 0 when the store is clean, 4 when problems were found (each printed), 1 when the check could not run',
    )
    .argument('<STORE>', 'the store directory')
    .option('--json', 'print the report as JSON (also when problems are found)')
    .action(async (store: string) => {
      const opts = parseCommandLine(cmd, schema, { store })
      const report = await checkStore(opts.store)
      const c = report.checked
      if (opts.json) await writeTo(io.stdout, `${JSON.stringify(report, null, 2)}\n`)
      else if (report.clean) {
        const tree = 'kind' in report && report.kind === 'tree' ? `${plural((report as TreeFsckReport).checked.inodes, 'inode')}, ${plural((report as TreeFsckReport).checked.entries, 'entry')}, ` : ''
        await writeTo(io.stdout, `${report.path}: clean (checked ${tree}${plural(c.chunks, 'chunk')}, ${plural(c.dataPages, 'data page')}, ${plural(c.zeroPages, 'zero page')})\n`)
      }
      else await writeTo(io.stdout, report.problems.map((p) => `${p.code}  ${p.message}\n`).join(''))
      const first = report.problems[0]
      if (first) {
        const count = plural(report.problems.length, 'problem')
        throw new NotCleanError(first.code, `${report.path} is not clean: ${count}, the first: ${first.message}`)
      }
    })
  return examples(cmd, ['pagecow fsck vm1.cow', 'pagecow fsck vm1.cow --json'])
}

function plural(n: number, noun: string): string {
  if (n === 1) return `${n} ${noun}`
  return noun.endsWith('y') ? `${n} ${noun.slice(0, -1)}ies` : `${n} ${noun}s`
}
