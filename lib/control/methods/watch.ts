// `watch`: events of a running server as a stream. Today the one event is `flushed` (a commit
// made writes durable), which proves the mechanism; first-dirty events join it later.
import { z } from 'zod'
import type { ControlStream } from '../control-method.js'

/** The events a watch can ask for. */
export const WATCH_EVENTS = ['flushed'] as const
export type WatchEventName = (typeof WATCH_EVENTS)[number]

const params = z.strictObject({
  events: z.array(z.enum(WATCH_EVENTS)).min(1).max(WATCH_EVENTS.length),
})

const event = z.strictObject({
  event: z.enum(WATCH_EVENTS),
  /** When the server saw it, as an ISO 8601 time. */
  at: z.string(),
})

export type WatchEvent = z.output<typeof event>

export const watchMethod: ControlStream<z.output<typeof params>, WatchEvent> = {
  type: 'stream',
  name: 'watch',
  params,
  event,
  start(store, p, emit) {
    const onFlush = () => emit({ event: 'flushed', at: new Date().toISOString() })
    if (p.events.includes('flushed')) store.on('flush', onFlush)
    return () => store.off('flush', onFlush)
  },
}
