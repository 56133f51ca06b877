// `pagecow map STORE`: the extents of the merged view, as a table or as qemu-img's JSON.
import { z } from 'zod'
import type { Extent } from '../../index.js'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand, SIZE_FORMS } from '../command.js'
import { formatSize } from '../format-size.js'
import { commonFlags, parseCommandLine, sizeValue } from '../options.js'
import { qemuMapLines } from '../qemu-map.js'
import { withStore } from '../with-store.js'

/** Output is written in batches of about this many characters. */
const BATCH_CHARS = 64 * 1024

const schema = z
  .strictObject({
    store: z.string().min(1),
    offset: sizeValue.optional(),
    length: sizeValue.optional(),
    output: z.enum(['json', 'human']).optional(),
    json: z.boolean().optional(),
    ...commonFlags,
  })
  .refine((o) => !(o.json && o.output === 'human'), { message: '--json and --output=human contradict each other', path: ['output'] })

export function mapCommand(io: CliIo) {
  const cmd = newCommand('map', io)
    .summary('list the extents (qemu-img map fields with --output=json)')
    .description('list the extents of the image: data (upper), zero (upper), lower, hole')
    .argument('<STORE>', 'the store directory')
    .option('--offset <N>', `start of the range (${SIZE_FORMS}); default 0`)
    .option('--length <N>', 'length of the range; default to the end of the image')
    .option('--output <FORMAT>', '"human" (a table, the default) or "json" (the fields and layout of qemu-img map --output=json)')
    .option('--json', 'the same as --output=json')
    .action(async (store: string) => {
      const opts = parseCommandLine(cmd, schema, { store })
      const json = opts.json === true || opts.output === 'json'
      await withStore(opts.store, { readOnly: true }, async (s) => {
        const extents = s.extents(opts.offset ?? 0, opts.length)
        await writeBatched(io, json ? qemuMapLines(extents) : tableLines(extents))
      })
    })
  return examples(cmd, ['pagecow map vm1.cow', 'pagecow map vm1.cow --output=json', 'pagecow map vm1.cow --offset 1G --length 16M'])
}

function* tableLines(extents: Iterable<Extent>): Generator<string> {
  yield `${'START'.padStart(16)} ${''.padEnd(10)} ${'LENGTH'.padStart(16)} ${''.padEnd(10)} STATE\n`
  for (const e of extents) {
    yield `${String(e.start).padStart(16)} ${formatSize(e.start).padEnd(10)} ${String(e.length).padStart(16)} ${formatSize(e.length).padEnd(10)} ${e.state}\n`
  }
}

async function writeBatched(io: CliIo, pieces: Iterable<string>): Promise<void> {
  let batch = ''
  for (const piece of pieces) {
    batch += piece
    if (batch.length >= BATCH_CHARS) {
      await writeTo(io.stdout, batch)
      batch = ''
    }
  }
  if (batch) await writeTo(io.stdout, batch)
}
