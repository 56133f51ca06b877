// What a control method is: one named request a running server answers on its store, and that
// the same code answers on a closed store (the CLI opens it and runs the method itself). Adding
// a command that works on a served store is one method file and a line in method-table.ts.
import type { z } from 'zod'
import type { AnyStore } from '../open-store.js'

/** A request with one reply. */
export interface ControlCall<P = unknown, R = unknown> {
  readonly type: 'call'
  readonly name: string
  /** The params, validated strictly by the server (and by a local run). */
  readonly params: z.ZodType<P>
  /** What the client checks a reply against before trusting it. */
  readonly result: z.ZodType<R>
  /** Whether the work only looks: a closed store is then opened read-only for it. */
  readonly readOnly: boolean
  /** The work, on the store's public API only. */
  run(store: AnyStore, params: P): Promise<R>
}

/** A request answered by events until the server ends it or the client goes away. */
export interface ControlStream<P = unknown, E = unknown> {
  readonly type: 'stream'
  readonly name: string
  readonly params: z.ZodType<P>
  /** What the client checks each event against. */
  readonly event: z.ZodType<E>
  /** Start sending events to `emit`; the function returned stops them (called exactly once). */
  start(store: AnyStore, params: P, emit: (event: E) => void): () => void
}

/** Any method, as the server's table holds them (each checks its own params before its work sees them). */
export type ControlMethod = ControlCall<any, any> | ControlStream<any, any>
