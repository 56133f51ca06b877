// `pagecow create STORE --lower LOWER`: a new store over a raw image, or over a directory tree or
// a squashfs image (read in user space).
import { z } from 'zod'
import { createStore, LOWER_FORMATS } from '../../index.js'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand, SIZE_FORMS } from '../command.js'
import { formatSize } from '../format-size.js'
import { commonFlags, parseCommandLine, sizeValue } from '../options.js'

const schema = z.strictObject({
  store: z.string().min(1, 'the store directory is required'),
  lower: z.string().min(1, 'the lower (an image or a directory) is required'),
  lowerFormat: z.enum(LOWER_FORMATS, { error: `must be one of ${LOWER_FORMATS.join(', ')}` }).optional(),
  pageSize: sizeValue.optional(),
  json: z.boolean().optional(),
  ...commonFlags,
})

export function createCommand(io: CliIo) {
  const cmd = newCommand('create', io)
    .summary('create a store over a raw image, a directory tree or a squashfs image')
    .description(
      'create a store in STORE (a new or empty directory) overlaying LOWER: a raw image (image mode), or a directory or a squashfs image read without mounting it (tree mode)',
    )
    .argument('<STORE>', 'the store directory to create')
    .requiredOption('--lower <LOWER>', 'the raw image, directory or squashfs image to overlay; it is only ever read')
    .option('--lower-format <FORMAT>', `what LOWER is: ${LOWER_FORMATS.join(', ')}; default: a directory, a squashfs image by its magic, else raw`)
    .option('--page-size <SIZE>', `page size, a power of two from 512 to 1M (${SIZE_FORMS}); default 4k`)
    .option('--json', "print the new store's info as JSON")
    .action(async (store: string) => {
      const opts = parseCommandLine(cmd, schema, { store })
      const created = await createStore(opts.store, { lower: opts.lower, lowerFormat: opts.lowerFormat, pageSize: opts.pageSize })
      try {
        const info = created.info()
        const what = info.kind === 'image' ? `${formatSize(info.size)} image` : info.lower.format === 'squashfs' ? 'tree (squashfs image)' : 'tree'
        await writeTo(
          io.stdout,
          opts.json ? `${JSON.stringify(info, null, 2)}\n` : `created ${info.path}: ${what} over ${info.lower.path}, page size ${formatSize(info.pageSize)}\n`,
        )
      } finally {
        await created.close()
      }
    })
  return examples(cmd, ['pagecow create vm1.cow --lower base.img', 'pagecow create vm1.cow --lower base.img --page-size 64k --json', 'pagecow create root.cow --lower /srv/rootfs', 'pagecow create root.cow --lower rootfs.squashfs'])
}
