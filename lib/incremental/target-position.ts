// Where a restored image stands in its backup chain, kept with the image itself in an extended
// attribute: which store it is of, the mark its content is at or after, and while an apply runs,
// which incremental is being applied (so a cut-short apply is finished by that one and no other).
// A file system without user xattrs (or a copy that dropped them) leaves only the content check.
import { z } from 'zod'
import * as fs from '../fs.js'
import { PagecowError } from '../errors.js'

/** The extended attribute holding a target's position. */
export const POSITION_XATTR = 'user.pagecow.position'

const markSchema = z.strictObject({ name: z.string().min(1), epoch: z.number().int().positive(), created: z.string() })

const positionSchema = z.strictObject({
  store: z.string().regex(/^[0-9a-f]{32}$/),
  /** The newest mark when the content was taken (null: before any mark). */
  at: markSchema.nullable(),
  /** An apply in progress: only this incremental may be applied until it finishes. */
  applying: z.strictObject({ id: z.string().regex(/^[0-9a-f]{16}$/), since: markSchema, reached: markSchema }).optional(),
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
