// Where a restored image (or tree: the attribute is on its root directory) stands in its backup
// chain, kept with it in an extended attribute: which store it is of, the mark its content is at
// or after, and while an apply runs, which incremental is being applied (so a cut-short apply is
// finished by that one and no other). A file system without user xattrs (or a copy that dropped
// them) leaves only the content check.
import { z } from 'zod'
import * as fs from '../fs.js'
import { PagecowError } from '../errors.js'
import type { IncrementalMark } from './incremental-format.js'
import { TREE_PHASES } from './tree-operation.js'

/** The extended attribute holding a target's position. */
export const POSITION_XATTR = 'user.pagecow.position'

const markSchema = z.strictObject({ name: z.string().min(1), epoch: z.number().int().positive(), created: z.string() })

const positionSchema = z.strictObject({
  store: z.string().regex(/^[0-9a-f]{32}$/),
  /** The newest mark when the content was taken (null: before any mark). */
  at: markSchema.nullable(),
  /** Trees: the content holds changes made after `at` too (taken while the store changed after it). */
  beyond: z.literal(true).optional(),
  /** Trees: the incremental that brought the content here (applying it again does nothing). */
  applied: z.string().regex(/^[0-9a-f]{16}$/).optional(),
  /** An apply in progress: only this incremental may be applied until it finishes. */
  applying: z
    .strictObject({
      id: z.string().regex(/^[0-9a-f]{16}$/),
      since: markSchema,
      reached: markSchema,
      /** Tree targets: the phase the apply had reached (every phase before it is complete and synced). */
      phase: z.enum(TREE_PHASES).optional(),
    })
    .optional(),
})

export type TargetPosition = z.infer<typeof positionSchema>

/** The position recorded on `fd`, or undefined if none (or the file system keeps no xattrs). */
export function readPosition(fd: number, where: string): TargetPosition | undefined {
  let raw: Buffer | null
  try {
    raw = fs.getXattr(fd, POSITION_XATTR)
  } catch {
    return undefined
  }
  if (raw === null) return undefined
  let parsed: unknown
  try {
    parsed = JSON.parse(raw.toString('utf8'))
  } catch {
    parsed = undefined
  }
  const result = positionSchema.safeParse(parsed)
  if (!result.success) {
    throw new PagecowError('ECHAIN', `${where}: its ${POSITION_XATTR} attribute is not one pagecow writes; if you trust its content, remove it (setfattr -x ${POSITION_XATTR} ${where}) and only the content check is made`)
  }
  return result.data
}

/** Record `position` on `fd`; false if the file system keeps no user xattrs. */
export function writePosition(fd: number, position: TargetPosition): boolean {
  try {
    fs.setXattr(fd, POSITION_XATTR, Buffer.from(JSON.stringify(position), 'utf8'))
    return true
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'EPERM' || code === 'EACCES') return false
    throw err
  }
}

/** Refuse a target whose recorded position does not fit the incremental `id` (since, reached). */
export function checkPosition(position: TargetPosition, id: string, store: string, since: IncrementalMark, reached: IncrementalMark, target: string, incremental: string): void {
  const nothing = 'nothing was applied'
  if (position.store !== store) throw new PagecowError('ECHAIN', `${target} is an export of another store than ${incremental}; ${nothing}`)
  if (position.applying) {
    if (position.applying.id === id) return // finishing a cut-short apply of this same incremental
    throw new PagecowError(
      'ECHAIN',
      `${target} is part way through another incremental (since ${JSON.stringify(position.applying.since.name)} up to ${JSON.stringify(position.applying.reached.name)}), cut short; apply that one again first; ${nothing}`,
    )
  }
  const at = position.at
  if (at === null) {
    throw new PagecowError('ECHAIN', `${target} was exported before any mark of its store, so changes between that export and the mark ${JSON.stringify(since.name)} are in no incremental; take the full export after the mark; ${nothing}`)
  }
  if (at.epoch < since.epoch || (at.epoch === since.epoch && at.name !== since.name)) {
    throw new PagecowError('ECHAIN', `${target} is at the mark ${JSON.stringify(at.name)}, before the mark ${JSON.stringify(since.name)} that ${incremental} starts from: an incremental in between is missing; ${nothing}`)
  }
  if (at.epoch > reached.epoch) {
    throw new PagecowError('ECHAIN', `${target} is already at the mark ${JSON.stringify(at.name)}, after the mark ${JSON.stringify(reached.name)} that ${incremental} reaches: applying it would bring older content back; ${nothing}`)
  }
}

/**
 * Refuse a tree target whose position does not fit a tree incremental: a tree's names move, so
 * the target must be exactly at the mark the incremental starts from, not merely at or after it.
 * Returns 'applied' when this very incremental brought the target where it is.
 */
export function checkTreePosition(position: TargetPosition, id: string, store: string, since: IncrementalMark, target: string, incremental: string): 'apply' | 'resume' | 'applied' {
  const nothing = 'nothing was applied'
  if (position.store !== store) throw new PagecowError('ECHAIN', `${target} is an export of another store than ${incremental}; ${nothing}`)
  if (position.applying) {
    if (position.applying.id === id) return 'resume'
    throw new PagecowError(
      'ECHAIN',
      `${target} is part way through another incremental (since ${JSON.stringify(position.applying.since.name)} up to ${JSON.stringify(position.applying.reached.name)}), cut short; apply that one again first; ${nothing}`,
    )
  }
  if (position.applied === id) return 'applied'
  const at = position.at
  if (at === null) {
    throw new PagecowError('ECHAIN', `${target} was exported before any mark of its store, so changes between that export and the mark ${JSON.stringify(since.name)} are in no incremental; take the full export after the mark; ${nothing}`)
  }
  if (at.epoch !== since.epoch || at.name !== since.name) {
    const order = at.epoch < since.epoch ? 'an incremental in between is missing' : 'it is past that mark already'
    throw new PagecowError('ECHAIN', `${target} is at the mark ${JSON.stringify(at.name)}, and ${incremental} starts from the mark ${JSON.stringify(since.name)}: ${order}; ${nothing}`)
  }
  if (position.beyond) {
    throw new PagecowError(
      'ECHAIN',
      `${target} is at the mark ${JSON.stringify(at.name)} and holds changes made after it (it was exported, or its last incremental was, while the store changed after that mark), so an incremental since that mark does not apply to it; ` +
        `for a tree backup chain, take each mark and its export with nothing changing in between; ${nothing}`,
    )
  }
  return 'apply'
}
