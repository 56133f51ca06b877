// `freeze`, `thaw`, `frozen`: per-file freeze of a running server's store (SPEC §7). A freeze lives
// as long as the store is open, so these only make sense through a server: on a closed store the
// CLI refuses them rather than freeze a store that closes (and thaws) at once.
import { z } from 'zod'
import type { ControlCall } from '../control-method.js'

const frozenSchema = z.strictObject({
  path: z.string().nullable(),
  ino: z.number().int().nullable(),
  timeoutMs: z.number().int().nullable(),
  frozenAt: z.string(),
  waiting: z.number().int().min(0),
})
const result = z.strictObject({ frozen: z.array(frozenSchema) })
export type FrozenResult = z.output<typeof result>

export const freezeMethod: ControlCall<{ path?: string | undefined; timeoutMs?: number | undefined }, FrozenResult> = {
  type: 'call',
  name: 'freeze',
  params: z.strictObject({ path: z.string().min(1).max(64 * 1024).optional(), timeoutMs: z.number().optional() }),
  result,
  readOnly: false,
  async run(store, p) {
    const options = p.timeoutMs === undefined ? {} : { timeoutMs: p.timeoutMs }
    if (store.kind === 'image') await store.freeze(p.path as undefined, options)
    else await store.freeze(p.path as string, options)
    return { frozen: store.frozen() }
  },
}

export const thawMethod: ControlCall<{ path?: string | undefined }, FrozenResult> = {
  type: 'call',
  name: 'thaw',
  params: z.strictObject({ path: z.string().min(1).max(64 * 1024).optional() }),
  result,
  readOnly: false,
  async run(store, p) {
    if (store.kind === 'image') await store.thaw(p.path as undefined)
    else await store.thaw(p.path as string)
    return { frozen: store.frozen() }
  },
}
