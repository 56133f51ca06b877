// A pagecow NBD server as its own process, for the NBD benchmark and the crash test:
//   npx tsx tools/bench/nbd-serve.ts STORE [--create LOWER] [--page-size N] [--socket PATH | --port N]
//     [--export-name NAME] [--auto-flush-ms N] [--read-only]
// Prints the NBD URI on stdout once listening; SIGTERM or SIGINT flushes and exits 0.
import { parseArgs } from 'node:util'
import { ImageStore, NbdServer } from '../../lib/index.js'

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    create: { type: 'string' },
    'page-size': { type: 'string' },
    socket: { type: 'string' },
    port: { type: 'string' },
    'export-name': { type: 'string' },
    'auto-flush-ms': { type: 'string' },
    'read-only': { type: 'boolean' },
  },
})
const dir = positionals[0]
if (!dir) {
  console.error('usage: nbd-serve.ts STORE [--create LOWER] [--socket PATH | --port N] [--export-name NAME]')
  process.exit(1)
}
const autoFlushMs = values['auto-flush-ms'] === undefined ? undefined : Number(values['auto-flush-ms'])
const store = values.create
  ? await ImageStore.create(dir, {
      lower: values.create,
      ...(values['page-size'] ? { pageSize: Number(values['page-size']) } : {}),
      ...(autoFlushMs === undefined ? {} : { autoFlushMs }),
    })
  : await ImageStore.open(dir, { readOnly: values['read-only'] ?? false, ...(autoFlushMs === undefined ? {} : { autoFlushMs }) })
const server = await NbdServer.listen(store, {
  ...(values.socket ? { socket: values.socket } : { port: values.port === undefined ? 0 : Number(values.port) }),
  exportName: values['export-name'] ?? '',
})
server.on('warning', (err: unknown) => console.error('warning:', err))
console.log(server.uri)

let stopping = false
const stop = async () => {
  if (stopping) return
  stopping = true
  await server.close()
  await store.close()
  process.exit(0)
}
process.on('SIGTERM', () => void stop())
process.on('SIGINT', () => void stop())
