// `pagecow apply INCREMENTAL TARGET`: lay an incremental (`pagecow export --since`) onto the image
// (or file, or tree directory) it was made against, in place. Touches no store: it reads one file
// and writes the target.
import { z } from 'zod'
import { applyIncremental, type ApplyResult } from '../../incremental/apply-incremental.js'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand } from '../command.js'
import { formatSize } from '../format-size.js'
import { commonFlags, parseCommandLine } from '../options.js'
import { startProgress } from '../progress.js'
import { escapeName } from '../escape-name.js'

const schema = z.strictObject({ incremental: z.string().min(1), target: z.string().min(1), json: z.boolean().optional(), ...commonFlags })

const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const

export function applyCommand(io: CliIo) {
  const cmd = newCommand('apply', io)
    .summary('apply an incremental (export --since) onto the image, file or tree it was made against')
    .description(
      'apply INCREMENTAL onto TARGET in place: TARGET must be an image of the same store at or after the mark the incremental starts from ' +
        '(a full export taken after that mark, with the incrementals before this one applied in order); its size is set and its changed ranges written ' +
        '(zeroed ranges become holes where the file system can punch them). A damaged incremental (ECORRUPT) or a wrong target (ECHAIN) changes nothing. ' +
        'A tree incremental applies onto the directory a full export of the tree store made at its mark (or the applies before it): names, types, modes, owners, times, xattrs, hard links, symlinks, devices and data become those of a full export made now. ' +
        'An apply cut short (a crash, SIGKILL, Ctrl-C) is finished by applying the same incremental again; two applies onto one target at once: the second is refused (EBUSY).',
    )
    .argument('<INCREMENTAL>', 'the incremental file')
    .argument('<TARGET>', 'the raw image file (or file) to update; for a tree incremental, the directory')
    .option('--json', 'print the result as JSON')
    .action(async (incremental: string, target: string) => {
      const opts = parseCommandLine(cmd, schema, { incremental, target })
      const controller = new AbortController()
      const handlers = STOP_SIGNALS.map((name) => {
        const handler = () => controller.abort(name)
        process.on(name, handler)
        return [name, handler] as const
      })
      let result: ApplyResult
      const progress = startProgress(io, 'apply', 100, (n) => `${n}%`)
      try {
        result = await applyIncremental(opts.incremental, opts.target, { signal: controller.signal, onProgress: (p) => progress.update(p.total > 0 ? Math.floor((100 * p.done) / p.total) : 100) })
      } finally {
        progress.stop()
        for (const [name, handler] of handlers) process.off(name, handler)
      }
      if (opts.json) return writeTo(io.stdout, `${JSON.stringify(result, null, 2)}\n`)
      const finished = result.resumed ? ' (finished an apply cut short)' : ''
      if (result.kind === 'tree') {
        const owners = result.ownersSkipped ? '; owners not set (changing owners needs privilege)' : ''
        return writeTo(
          io.stdout,
          `applied ${opts.incremental} onto the tree ${opts.target}: the changes since ${result.since.name}, up to the mark ${result.reached.name}; ` +
            `${result.operations} operations, ${result.files} files, ${formatSize(result.dataBytes)} written, ${formatSize(result.zeroBytes)} zeroed${finished}${owners}\n`,
        )
      }
      const what = result.path === undefined ? '' : ` (${escapeName(result.path)})`
      await writeTo(
        io.stdout,
        `applied ${opts.incremental}${what} onto ${opts.target}: the changes since ${result.since.name}, up to the mark ${result.reached.name}; ` +
          `${formatSize(result.dataBytes)} written, ${formatSize(result.zeroBytes)} zeroed, size ${formatSize(result.size)}${finished}\n`,
      )
    })
  return examples(cmd, ['pagecow apply vm1-since-monday.pcinc restore/vm1.img', 'pagecow apply inc-2.pcinc vm1.img --json', 'pagecow apply root-since-boot.pcinc /backup/root'])
}
