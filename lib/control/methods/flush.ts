// `flush`: make every write the store completed durable (SPEC §3), whoever serves it.
import { z } from 'zod'
import type { ControlCall } from '../control-method.js'

const result = z.strictObject({ path: z.string() })

export const flushMethod: ControlCall<Record<string, never>, z.output<typeof result>> = {
  type: 'call',
  name: 'flush',
  params: z.strictObject({}),
  result,
  readOnly: false,
  async run(store) {
    await store.flush()
    return { path: store.path }
  },
}
