// `pagecow info STORE`: the store and the chain of layers under it, as `qemu-img info
// --backing-chain` lists a qcow2 chain; `--json` prints the library's backingChain() as is.
import { z } from 'zod'
import type { ChainLayer } from '../../layers/chain-layer.js'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand } from '../command.js'
import { formatSize } from '../format-size.js'
import { formatJson } from '../json.js'
import { commonFlags, parseCommandLine } from '../options.js'
import { withStore } from '../with-store.js'

const schema = z.strictObject({ store: z.string().min(1), json: z.boolean().optional(), ...commonFlags })

export function infoCommand(io: CliIo) {
  const cmd = newCommand('info', io)
    .summary('show an image store and the chain of layers under it')
    .description('show the image store and every layer under it, the store first and the raw image last, as `qemu-img info --backing-chain` shows a qcow2 chain: path, format, size, disk use, page size, pages, whether it is sealed, and what it is layered on')
    .argument('<STORE>', 'the store directory')
    .option('--json', 'print the chain as a JSON array, the store first (depth 0)')
    .action(async (store: string) => {
      const opts = parseCommandLine(cmd, schema, { store })
      const chain = await withStore(opts.store, { readOnly: true }, async (s) => s.backingChain())
      await writeTo(io.stdout, opts.json ? formatJson(chain, 2) : chain.map(describeLayer).join('\n'))
    })
  return examples(cmd, ['pagecow info vm1.cow', 'pagecow info vm1.cow --json | jq -r ".[].path"'])
}

function describeLayer(layer: ChainLayer): string {
  const lines = [
    `image: ${layer.path}`,
    `file format: ${layer.format}`,
    `virtual size: ${formatSize(layer.size)} (${layer.size} bytes)`,
    `disk size: ${formatSize(layer.allocatedBytes)}`,
  ]
  if (layer.pageSize !== null) lines.push(`page size: ${layer.pageSize}`)
  if (layer.pages) lines.push(`pages: ${layer.pages.data} data, ${layer.pages.zero} zero`)
  if (layer.format === 'pagecow') lines.push(`sealed: ${layer.sealed ? 'yes (the base of another store: read-only)' : 'no'}`)
  if (layer.backing !== null) lines.push(`backing file: ${layer.backing}`, `backing file format: ${layer.backingFormat}`)
  return `${lines.join('\n')}\n`
}
