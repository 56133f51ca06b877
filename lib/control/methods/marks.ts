// `mark`, `marks`, `unmark`: the marks of a store (SPEC §7), whoever holds its writer.
import { z } from 'zod'
import type { ControlCall } from '../control-method.js'

const markSchema = z.strictObject({ name: z.string(), epoch: z.number().int().positive(), created: z.string() })
type MarkResult = z.output<typeof markSchema>

export const markMethod: ControlCall<{ name: string }, MarkResult> = {
  type: 'call',
  name: 'mark',
  params: z.strictObject({ name: z.string().max(1024) }),
  result: markSchema,
  readOnly: false,
  run: (store, p) => store.mark(p.name),
}

export const marksMethod: ControlCall<Record<string, never>, MarkResult[]> = {
  type: 'call',
  name: 'marks',
  params: z.strictObject({}),
  result: z.array(markSchema),
  readOnly: true,
  run: async (store) => store.marks(),
}

export const unmarkMethod: ControlCall<{ name: string }, { path: string }> = {
  type: 'call',
  name: 'unmark',
  params: z.strictObject({ name: z.string().max(1024) }),
  result: z.strictObject({ path: z.string() }),
  readOnly: false,
  async run(store, p) {
    await store.unmark(p.name)
    return { path: store.path }
  },
}
