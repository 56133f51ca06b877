// `inspect`: the report `pagecow inspect` prints; on a served store it is the server's view,
// pages written and not yet flushed included.
import { z } from 'zod'
import { inspectAny, type AnyInspectReport } from '../../inspect-report.js'
import type { ControlCall } from '../control-method.js'

const params = z.strictObject({
  /** Tree stores: the file whose page map to report. */
  path: z.string().min(1).max(4096).optional(),
  /** Cells per row of the folded map. */
  width: z.number().int().min(1).max(4096).optional(),
})

// The formatter reads many fields: the client checks the report's shape at its top; the server
// is the store owner's own pagecow (see ControlClient.connect).
const result = z.union([
  z.looseObject({ info: z.looseObject({ kind: z.literal('image'), path: z.string() }), map: z.looseObject({ cells: z.array(z.string()) }) }),
  z.looseObject({ info: z.looseObject({ kind: z.literal('tree'), path: z.string() }), changes: z.array(z.looseObject({ path: z.string() })) }),
  z.looseObject({ info: z.looseObject({ ino: z.number(), path: z.string() }), map: z.looseObject({ cells: z.array(z.string()) }) }),
]) as unknown as z.ZodType<AnyInspectReport>

export const inspectMethod: ControlCall<z.output<typeof params>, AnyInspectReport> = {
  type: 'call',
  name: 'inspect',
  params,
  result,
  readOnly: true,
  run: (store, p) => inspectAny(store, p),
}
