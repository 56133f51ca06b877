// `pagecow rebase STORE --onto NEWLOWER --unsafe`: point a store at its moved lower (as
// `qemu-img rebase -u`), checked to be the lower it was made on unless --force.
import { z } from 'zod'
import { ImageStore } from '../../image/image-store.js'
import { PagecowError } from '../../errors.js'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand } from '../command.js'
import { formatJson } from '../json.js'
import { commonFlags, parseCommandLine } from '../options.js'

const schema = z.strictObject({
  store: z.string().min(1),
  onto: z.string().min(1, 'the new lower is required'),
  unsafe: z.boolean().optional(),
  force: z.boolean().optional(),
  json: z.boolean().optional(),
  ...commonFlags,
})

export function rebaseCommand(io: CliIo) {
  const cmd = newCommand('rebase', io)
    .summary("point an image store at its moved lower (--unsafe)")
    .description(
      'point the image store STORE at NEWLOWER, where its lower (a base store or a raw image) is now, without reading or changing a page (as `qemu-img rebase -u`). NEWLOWER must be the lower the store was made on: the same store (its identity, unchanged since) or a raw image with the same fingerprint; --force takes whatever is there. Only --unsafe is built: a rebase that moves the store onto a different lower page by page is not',
    )
    .argument('<STORE>', 'the store directory')
    .requiredOption('--onto <NEWLOWER>', 'where the lower is now: a store directory or a raw image')
    .option('--unsafe', 'only re-point the lower (required: the safe rebase is not built yet)')
    .option('--force', 'point it there even if NEWLOWER is not the lower the store was made on (its pages then lie over other bytes)')
    .option('--json', 'print what was done as JSON')
    .action(async (store: string) => {
      const opts = parseCommandLine(cmd, schema, { store })
      if (!opts.unsafe) throw new PagecowError('EINVAL', 'rebase: only `rebase --unsafe` (re-point a moved lower) is built; a rebase onto a different lower, page by page, is not yet')
      const result = await ImageStore.rebaseUnsafe(opts.store, opts.onto, { force: opts.force ?? false })
      const text = opts.json ? formatJson(result, 2) : `${result.path}: lower ${result.from} -> ${result.onto} (${result.format === 'store' ? 'a store' : 'a raw image'}${result.forced ? ', forced: not the lower it was made on' : ''})\n`
      await writeTo(io.stdout, text)
    })
  return examples(cmd, ['mv base.cow /srv/base.cow && pagecow rebase vm1.cow --onto /srv/base.cow --unsafe', 'pagecow rebase vm1.cow --onto /images/base.img --unsafe --force'])
}
