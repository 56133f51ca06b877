// `changes`: what changed since a mark (SPEC §7) — the changed extents of the image or of one file
// of a tree, or a tree's changed paths — including what a server holds and has not flushed.
import { z } from 'zod'
import { PagecowError } from '../../errors.js'
import type { ControlCall } from '../control-method.js'

const extentSchema = z.strictObject({
  start: z.number().int().min(0),
  length: z.number().int().positive(),
  change: z.enum(['written', 'zeroed', 'lower', 'truncated']),
  state: z.enum(['data', 'lower', 'zero', 'hole']).optional(),
})
const pathSchema = z.strictObject({
  path: z.string(),
  status: z.enum(['created', 'removed', 'replaced', 'renamed', 'modified', 'metadata']),
  type: z.string().nullable(),
  from: z.string().optional(),
  changedBytes: z.number().int().min(0).optional(),
})
const result = z.union([z.strictObject({ extents: z.array(extentSchema) }), z.strictObject({ paths: z.array(pathSchema) })])

export type ChangesResult = z.output<typeof result>

export const changesMethod: ControlCall<{ since: string; path?: string | undefined }, ChangesResult> = {
  type: 'call',
  name: 'changes',
  params: z.strictObject({ since: z.string().max(1024), path: z.string().min(1).max(64 * 1024).optional() }),
  result,
  readOnly: true,
  async run(store, p) {
    if (store.kind === 'image') {
      if (p.path !== undefined) throw new PagecowError('EINVAL', `changes: ${store.path} is an image store; it has no paths (drop ${JSON.stringify(p.path)})`)
      return { extents: [...store.changedExtents(p.since)] }
    }
    if (p.path === undefined) return { paths: store.changedSince(p.since) }
    return { extents: [...store.changedExtents(p.path, p.since)] }
  },
}
