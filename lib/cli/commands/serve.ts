// `pagecow serve STORE`: export the store over NBD until SIGINT or SIGTERM, then flush and exit.
import { z } from 'zod'
import { ControlServer } from '../../control/control-server.js'
import { PagecowError } from '../../errors.js'
import { ImageStore } from '../../image/image-store.js'
import { NbdServer } from '../../nbd/server.js'
import { storeKind } from '../../open-store.js'
import { NBD_DEFAULTS } from '../../nbd/options.js'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand } from '../command.js'
import { formatSize } from '../format-size.js'
import { commonFlags, countValue, DETECT_ZEROES_HELP, detectZeroesValue, parseCommandLine, sizeValue } from '../options.js'

const schema = z
  .strictObject({
    store: z.string().min(1, 'the store directory is required'),
    host: z.string().min(1).optional(),
    port: countValue(0, 65535).optional(),
    socket: z.string().min(1).optional(),
    readOnly: z.boolean().optional(),
    exportName: z.string().optional(),
    maxConnections: countValue(1, 4096).optional(),
    memoryLimit: sizeValue
      .refine((n) => n >= NBD_DEFAULTS.minMemoryLimit, `must be at least ${formatSize(NBD_DEFAULTS.minMemoryLimit)} (one request of the largest size)`)
      .refine((n) => n <= 2 ** 40, 'must be at most 1 TiB')
      .optional(),
    idleTimeoutMs: countValue(0, 2 ** 31 - 1)
      .refine((ms) => ms === 0 || ms >= 100, 'must be 0 (never) or at least 100')
      .optional(),
    detectZeroes: detectZeroesValue.optional(),
    json: z.boolean().optional(),
    ...commonFlags,
  })
  .refine((o) => o.socket === undefined || (o.host === undefined && o.port === undefined), {
    message: 'give either --socket or --host/--port, not both',
    path: ['socket'],
  })

/** The signals that stop the server (after requests in flight finish and a flush). */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const

export function serveCommand(io: CliIo) {
  const cmd = newCommand('serve', io)
    .summary('export the store over NBD')
    .description(
      'serve the merged image over NBD (qemu, nbdinfo, nbdcopy, nbd-client) until interrupted; listens on 127.0.0.1 unless told otherwise, prints the NBD URI, and flushes the store on SIGINT or SIGTERM',
    )
    .argument('<STORE>', 'the store directory')
    .option('--host <ADDRESS>', 'TCP address to listen on; default 127.0.0.1 (loopback only)')
    .option('--port <N>', 'TCP port; default 10809, 0 picks a free one')
    .option('--socket <PATH>', 'listen on this Unix socket instead of TCP (made private to you)')
    .option('--read-only', 'serve read-only (the store is opened without the writer lock)')
    .option('--export-name <NAME>', 'the export name; default "" (the default export, always accepted)')
    .option('--max-connections <N>', `clients served at once; more are refused politely; default ${NBD_DEFAULTS.maxConnections}`)
    .option(
      '--memory-limit <SIZE>',
      `request and reply data held for all clients together; past it, requests wait; default ${formatSize(NBD_DEFAULTS.memoryLimit)}, at least ${formatSize(NBD_DEFAULTS.minMemoryLimit)}`,
    )
    .option(
      '--idle-timeout-ms <N>',
      `a client that makes no progress for N ms is disconnected: at once if it holds memory (replies it does not read), else when the server is full and another client connects; 0 never; default ${NBD_DEFAULTS.idleTimeoutMs}`,
    )
    .option('--detect-zeroes <MODE>', DETECT_ZEROES_HELP)
    .option('--json', 'print the address as one JSON line instead of the bare URI')
    .action(async (store: string) => {
      const opts = parseCommandLine(cmd, schema, { store })
      const readOnly = opts.readOnly === true
      if ((await storeKind(opts.store)) === 'tree') {
        throw new PagecowError('EINVAL', `serve: ${opts.store} is a tree store; NBD exports one disk image, so only image stores can be served`)
      }
      const opened = await ImageStore.open(opts.store, { readOnly, ...(opts.detectZeroes === undefined ? {} : { detectZeroes: opts.detectZeroes }) })
      let control: ControlServer | undefined
      try {
        // Other pagecow commands reach the served store through it (flush, inspect).
        if (!readOnly) control = await ControlServer.listen(opened)
        const server = await NbdServer.listen(opened, {
          ...(opts.socket === undefined ? {} : { socket: opts.socket }),
          ...(opts.host === undefined ? {} : { host: opts.host }),
          ...(opts.port === undefined ? {} : { port: opts.port }),
          ...(opts.exportName === undefined ? {} : { exportName: opts.exportName }),
          ...(opts.maxConnections === undefined ? {} : { maxConnections: opts.maxConnections }),
          ...(opts.memoryLimit === undefined ? {} : { memoryLimit: opts.memoryLimit }),
          ...(opts.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: opts.idleTimeoutMs }),
          readOnly,
        })
        const stopped = stopSignal()
        let signal: string
        try {
          server.on('warning', (err: unknown) => {
            io.stderr.write(`pagecow serve: ${err instanceof Error ? err.message : String(err)}\n`)
          })
          await writeTo(
            io.stdout,
            opts.json
              ? `${JSON.stringify({ uri: server.uri, ...server.address, exportName: server.exportName, readOnly: server.readOnly, size: opened.size })}\n`
              : `${server.uri}\n`,
          )
          if (io.stderrIsTTY) {
            await writeTo(io.stderr, `serving ${opened.path} (${formatSize(opened.size)}${server.readOnly ? ', read-only' : ''}); Ctrl-C stops\n`)
          }
          signal = await stopped.signal
        } finally {
          // Freezes end with the server (they are not persistent): the writes waiting for one are
          // requests in flight, which close() lets finish, so they land and are flushed.
          if (!opened.readOnly) opened.thawAll()
          await server.close() // requests in flight finish, clients are disconnected, the store is flushed
          stopped.dispose()
        }
        if (io.stderrIsTTY) await writeTo(io.stderr, `${signal}: stopped, ${opened.path} flushed\n`)
      } finally {
        await control?.close()
        await opened.close()
      }
    })
  return examples(cmd, [
    'pagecow serve vm1.cow',
    'pagecow serve vm1.cow --socket /run/user/1000/vm1.sock --export-name vm1',
    'qemu-system-x86_64 -drive file=nbd://127.0.0.1:10809,format=raw ...',
  ])
}

/**
 * The first stop signal to arrive. The handlers stay until dispose(), so a second Ctrl-C while
 * the server drains and flushes does not kill the process halfway.
 */
function stopSignal(): { signal: Promise<string>; dispose: () => void } {
  let stop: (name: string) => void = () => {}
  const signal = new Promise<string>((resolve) => (stop = resolve))
  const handlers = STOP_SIGNALS.map((name) => {
    const handler = () => stop(name)
    process.on(name, handler)
    return [name, handler] as const
  })
  return { signal, dispose: () => handlers.forEach(([name, handler]) => process.off(name, handler)) }
}
