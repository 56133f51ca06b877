// `pagecow map STORE [PATH]`: the extents of the merged view (of the image, or of a file of a tree
// store), as a table or as qemu-img's JSON.
import { z } from 'zod'
import type { Extent, ExtentState } from '../../page/extent.js'
import type { LayerExtent } from '../../layers/layer-extent.js'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand, SIZE_FORMS } from '../command.js'
import { formatSize } from '../format-size.js'
import { commonFlags, parseCommandLine, sizeValue } from '../options.js'
import { qemuLayerMapLines, qemuMapLines } from '../qemu-map.js'
import { checkStoreLimit } from '../store-limit.js'
import { checkPathArgument, withAnyStore } from '../with-any-store.js'

/** Output is written in batches of about this many characters. */
const BATCH_CHARS = 64 * 1024

const schema = z
  .strictObject({
    store: z.string().min(1),
    path: z.string().min(1).optional(),
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
    .description('list the extents of the image, or of file PATH of a tree store: data (upper), zero (upper), lower, hole; for an image store layered on other stores, the layer of each extent (DEPTH: 0 this store, 1 its base, and so on; `depth` in the JSON, as qemu-img map gives for a backing chain)')
    .argument('<STORE>', 'the store directory')
    .argument('[PATH]', 'tree stores: the file to map')
    .option('--offset <N>', `start of the range (${SIZE_FORMS}); default 0`)
    .option('--length <N>', 'length of the range; default to the end of the image or file')
    .option('--output <FORMAT>', '"human" (a table, the default) or "json" (the fields and layout of qemu-img map --output=json)')
    .option('--json', 'the same as --output=json')
    .action(async (store: string, path: string | undefined) => {
      const opts = parseCommandLine(cmd, schema, path === undefined ? { store } : { store, path })
      checkStoreLimit('map', [['--offset', opts.offset], ['--length', opts.length]])
      const json = opts.json === true || opts.output === 'json'
      await withAnyStore(opts.store, { readOnly: true }, async (s) => {
        checkPathArgument(s, opts.path, 'map')
        if (s.kind === 'image') {
          // An image store's map says which layer each extent comes from (depth: 0 the upper, 1 the lower, more in a chain).
          const extents = s.extentsByLayer(opts.offset ?? 0, opts.length)
          await writeBatched(io, json ? qemuLayerMapLines(extents) : layerTableLines(extents, s.backingChain().length > 2))
          return
        }
        const extents = s.extents(opts.path!, opts.offset ?? 0, opts.length)
        await writeBatched(io, json ? qemuMapLines(extents) : tableLines(extents))
      })
    })
  return examples(cmd, ['pagecow map vm1.cow', 'pagecow map vm1.cow --output=json', 'pagecow map vm1.cow --offset 1G --length 16M', 'pagecow map root.cow /var/lib/db.sqlite --output=json'])
}

function* tableLines(extents: Iterable<Extent>): Generator<string> {
  yield `${'START'.padStart(16)} ${''.padEnd(10)} ${'LENGTH'.padStart(16)} ${''.padEnd(10)} STATE\n`
  for (const e of extents) {
    yield `${String(e.start).padStart(16)} ${formatSize(e.start).padEnd(10)} ${String(e.length).padStart(16)} ${formatSize(e.length).padEnd(10)} ${e.state}\n`
  }
}

/**
 * The table of an image store: the states of `tableLines` (depth 0 data and zero: the upper's; data
 * below: lower), and in a chain the layer of each extent in a DEPTH column.
 */
function* layerTableLines(extents: Iterable<LayerExtent>, chain: boolean): Generator<string> {
  if (!chain) {
    yield* tableLines(asExtents(extents))
    return
  }
  yield `${'START'.padStart(16)} ${''.padEnd(10)} ${'LENGTH'.padStart(16)} ${''.padEnd(10)} ${'STATE'.padEnd(5)} DEPTH\n`
  for (const e of extents) {
    yield `${String(e.start).padStart(16)} ${formatSize(e.start).padEnd(10)} ${String(e.length).padStart(16)} ${formatSize(e.length).padEnd(10)} ${stateOf(e).padEnd(5)} ${e.depth}\n`
  }
}

function stateOf(e: LayerExtent): ExtentState {
  return e.state === 'data' ? (e.depth === 0 ? 'data' : 'lower') : e.state
}

function* asExtents(extents: Iterable<LayerExtent>): Generator<Extent> {
  for (const e of extents) yield { start: e.start, length: e.length, state: stateOf(e), last: e.last }
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
