// `pagecow compact STORE`: give back the upper space of pages that need none — DATA pages that
// read the same as the lower become LOWER again, all-zero DATA pages become ZERO. Reads nothing
// differently; a store served by a running server is refused (EBUSY: the writer lock).
import { z } from 'zod'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand } from '../command.js'
import { formatSize } from '../format-size.js'
import { commonFlags, parseCommandLine } from '../options.js'
import { startProgress, type Progress } from '../progress.js'
import { withAnyStore } from '../with-any-store.js'

const schema = z.strictObject({ store: z.string().min(1), json: z.boolean().optional(), ...commonFlags })

export function compactCommand(io: CliIo) {
  const cmd = newCommand('compact', io)
    .summary('give back the space of pages equal to the lower or all zeros')
    .description(
      'examine every DATA page of the upper: one that reads the same as the lower under it becomes LOWER again (an edit that was reverted keeps no copy), an all-zero one becomes ZERO; their space is given back. What the store reads does not change and nothing is recorded as changed since a mark. Each page is verified against its checksum before it is compared. Interrupted, what was compacted stays compacted',
    )
    .argument('<STORE>', 'the store directory')
    .option('--json', 'print the result as JSON')
    .action(async (store: string) => {
      const opts = parseCommandLine(cmd, schema, { store })
      let progress: Progress | undefined
      const result = await withAnyStore(opts.store, {}, async (s) => {
        try {
          return await s.compact({
            onProgress: ({ done, total }) => {
              progress ??= startProgress(io, 'compact', total, (n) => `${n} ${s.kind === 'tree' ? 'files' : 'pages'}`)
              progress.update(done)
            },
          })
        } finally {
          progress?.stop()
        }
      })
      if (opts.json) {
        await writeTo(io.stdout, `${JSON.stringify(result, null, 2)}\n`)
        return
      }
      const files = 'files' in result ? ` in ${result.files} file${result.files === 1 ? '' : 's'}` : ''
      await writeTo(
        io.stdout,
        `${result.dataPages} data page${result.dataPages === 1 ? '' : 's'} examined${files}: ${result.toLower} back to LOWER, ${result.toZero} to ZERO; ${formatSize(result.bytesFreed)} given back\n`,
      )
    })
  return examples(cmd, ['pagecow compact vm1.cow', 'pagecow compact rootfs.cow --json'])
}
