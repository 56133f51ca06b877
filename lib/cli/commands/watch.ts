// `pagecow watch STORE`: follow the events of a running server (`pagecow mount`, `pagecow serve`)
// as JSON lines, one per event, until interrupted or the server stops.
import { z } from 'zod'
import { watchStore } from '../../control/call-store.js'
import { WATCH_EVENTS, watchMethod } from '../../control/methods/watch.js'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand } from '../command.js'
import { commonFlags, parseCommandLine, sizeValue } from '../options.js'

const schema = z.strictObject({
  store: z.string().min(1, 'the store directory is required'),
  events: z
    .string()
    .transform((list) => list.split(',').map((e) => e.trim()))
    .pipe(z.array(z.enum(WATCH_EVENTS, { error: `each event must be one of ${WATCH_EVENTS.join(', ')}` })).min(1))
    .optional(),
  since: z.string().optional(),
  blockSize: sizeValue.optional(),
  ...commonFlags,
})

/** The signals that end the watch (exit 0). */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const

export function watchCommand(io: CliIo) {
  const cmd = newCommand('watch', io)
    .summary("print a running server's events as JSON lines")
    .description(
      `follow the events of a store served by \`pagecow mount\` or \`pagecow serve\` (through its control socket), one JSON line each ({"event": "flushed", "at": "…"}), until interrupted (exit 0) or the server stops; a store no server runs is ENOENT. Events: ${WATCH_EVENTS.join(', ')}`,
    )
    .argument('<STORE>', 'the store directory')
    .option('--events <LIST>', `the events to follow, comma-separated (${WATCH_EVENTS.join(',')}); default flushed, and first-dirty with --since`)
    .option('--since <NAME>', 'first-dirty events: the first write after mark NAME to each block of the image (each file of a tree): {"event": "first-dirty", "mark", "path", "ino", "offset", "length"}')
    .option('--block-size <SIZE>', 'image stores: the first-dirty granularity (default 64k)')
    .action(async (store: string) => {
      const opts = parseCommandLine(cmd, schema, { store })
      const stop = new AbortController()
      const handlers = STOP_SIGNALS.map((name) => {
        const handler = () => stop.abort()
        process.on(name, handler)
        return [name, handler] as const
      })
      try {
        for await (const event of watchStore(opts.store, watchMethod, watchParams(opts), { signal: stop.signal })) {
          await writeTo(io.stdout, `${JSON.stringify(event)}\n`)
        }
      } finally {
        handlers.forEach(([name, handler]) => process.off(name, handler))
      }
    })
  return examples(cmd, ['pagecow watch vm1.cow', 'pagecow watch vm1.cow --since backup-1 > first-writes.jsonl', 'pagecow watch vm1.cow --events flushed | while read -r line; do echo "durable: $line"; done'])
}

function watchParams(opts: z.output<typeof schema>) {
  const events = opts.events ?? (opts.since === undefined ? ['flushed' as const] : ['flushed' as const, 'first-dirty' as const])
  return { events, ...(opts.since === undefined ? {} : { since: opts.since }), ...(opts.blockSize === undefined ? {} : { blockSize: opts.blockSize }) }
}
