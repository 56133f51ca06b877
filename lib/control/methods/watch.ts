// `watch`: events of a running server as a stream: `flushed` (a commit made writes durable) and
// `first-dirty` (the first write after the mark `since` to a block of the image or a file of the
// tree, SPEC §7). A watcher is told, it does not hold the write: the event is sent as the write
// goes on (a library handler, `store.onFirstDirty()`, is the one a write waits for).
import { z } from 'zod'
import { PagecowError } from '../../errors.js'
import type { ControlStream } from '../control-method.js'

/** The events a watch can ask for. */
export const WATCH_EVENTS = ['flushed', 'first-dirty'] as const
export type WatchEventName = (typeof WATCH_EVENTS)[number]

const params = z.strictObject({
  events: z.array(z.enum(WATCH_EVENTS)).min(1).max(WATCH_EVENTS.length),
  /** The mark whose first-dirty events to send. */
  since: z.string().max(1024).optional(),
  /** Image stores: the first-dirty granularity in bytes (default 64 KiB). */
  blockSize: z.number().optional(),
})

const event = z.strictObject({
  event: z.enum(WATCH_EVENTS),
  /** When the server saw it, as an ISO 8601 time. */
  at: z.string(),
  mark: z.string().optional(),
  path: z.string().nullable().optional(),
  ino: z.number().int().nullable().optional(),
  offset: z.number().int().min(0).optional(),
  length: z.number().int().min(0).optional(),
})

export type WatchEvent = z.output<typeof event>

export const watchMethod: ControlStream<z.output<typeof params>, WatchEvent> = {
  type: 'stream',
  name: 'watch',
  params,
  event,
  start(store, p, emit) {
    const stops: Array<() => void> = []
    if (p.events.includes('first-dirty')) {
      if (p.since === undefined) throw new PagecowError('EINVAL', 'watch: first-dirty events need the mark they count from (--since NAME)')
      const since = p.since
      const handler = (e: { mark: string; path: string | null; ino: number | null; offset: number; length: number }) =>
        emit({ event: 'first-dirty', at: new Date().toISOString(), mark: e.mark, path: e.path, ino: e.ino, offset: e.offset, length: e.length })
      stops.push(store.kind === 'image' ? store.onFirstDirty(since, handler, p.blockSize === undefined ? {} : { blockSize: p.blockSize }) : store.onFirstDirty(since, handler))
    }
    if (p.events.includes('flushed')) {
      const onFlush = () => emit({ event: 'flushed', at: new Date().toISOString() })
      store.on('flush', onFlush)
      stops.push(() => store.off('flush', onFlush))
    }
    return () => {
      for (const stop of stops) stop()
    }
  },
}
