// The metadata contexts an export offers for NBD_CMD_BLOCK_STATUS: `base:allocation`, and per mark
// of the store `qemu:dirty-bitmap:NAME` (qemu's docs/interop/nbd.txt), and which of them the
// queries of a LIST_META_CONTEXT or SET_META_CONTEXT option name.
import type { Mark } from '../index.js'
import { BASE_ALLOCATION } from './protocol.js'

/** The namespace and leaf prefix of qemu's dirty bitmaps: `qemu:dirty-bitmap:NAME`. */
export const DIRTY_BITMAP_PREFIX = 'qemu:dirty-bitmap:'
/** The context ID pagecow gives `base:allocation` in SET_META_CONTEXT replies. */
export const BASE_ALLOCATION_ID = 1

/** A context the export offers. A dirty bitmap is the mark it was offered for (a name and an epoch). */
export type MetaContext = { kind: 'allocation'; name: string } | { kind: 'dirty-bitmap'; name: string; mark: Mark }

/** A context a client selected, with the ID its BLOCK_STATUS replies carry. */
export type SelectedContext = MetaContext & { id: number }

/** The contexts of an export whose store has `marks` (oldest first): base:allocation, then one per mark. */
export function offeredContexts(marks: readonly Mark[]): MetaContext[] {
  return [{ kind: 'allocation', name: BASE_ALLOCATION }, ...marks.map((mark): MetaContext => ({ kind: 'dirty-bitmap', name: DIRTY_BITMAP_PREFIX + mark.name, mark }))]
}

/**
 * The offered contexts the queries name, in offered order, each once. A query is a full context
 * name; LIST (`list`) also takes no query at all (everything) and the prefixes `base:`, `qemu:`
 * and `qemu:dirty-bitmap:` (every context under them), as qemu does, where SET selects nothing
 * with them. Unknown names and namespaces name nothing: that is not an error (NBD proto.md).
 */
export function matchContexts(queries: readonly string[], offered: readonly MetaContext[], list: boolean): MetaContext[] {
  if (list && queries.length === 0) return [...offered]
  const exact = new Set(queries)
  const prefixes = list ? queries.filter((q) => q === 'base:' || q === 'qemu:' || q === DIRTY_BITMAP_PREFIX) : []
  return offered.filter((c) => exact.has(c.name) || prefixes.some((p) => c.name.startsWith(p)))
}

/** IDs for a selection: base:allocation keeps its own, dirty bitmaps take 2, 3, … in order. */
export function numberContexts(contexts: readonly MetaContext[]): SelectedContext[] {
  let next = BASE_ALLOCATION_ID + 1
  return contexts.map((c) => ({ ...c, id: c.kind === 'allocation' ? BASE_ALLOCATION_ID : next++ }))
}
