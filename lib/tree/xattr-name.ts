// Extended attribute names and values, checked as Linux does.
import { PagecowError } from '../errors.js'

/** Largest xattr value (XATTR_SIZE_MAX). */
export const XATTR_SIZE_MAX = 65536
const NAMESPACES = ['user.', 'trusted.', 'security.', 'system.']

/** A name in one of Linux's namespaces, 1–255 bytes, no NUL; ENOTSUP for an unknown namespace. */
export function checkXattrName(name: unknown, what: string): string {
  if (typeof name !== 'string' || name === '') throw new PagecowError('EINVAL', `${what}: an attribute name must be a non-empty string`)
  if (name.includes('\0')) throw new PagecowError('EINVAL', `${what}: an attribute name cannot contain NUL`)
  if (Buffer.byteLength(name) > 255) throw new PagecowError('ENAMETOOLONG', `${what}: attribute name over 255 bytes`)
  const ns = NAMESPACES.find((p) => name.startsWith(p))
  if (!ns || name.length === ns.length) {
    throw new PagecowError('ENOTSUP', `${what}: "${name}" is not in a supported namespace (${NAMESPACES.map((p) => p + '*').join(', ')})`)
  }
  return name
}

export function checkXattrValue(value: unknown, what: string): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new PagecowError('EINVAL', `${what}: the value must be a Buffer or Uint8Array`)
  if (value.length > XATTR_SIZE_MAX) throw new PagecowError('E2BIG', `${what}: the value is ${value.length} bytes; at most ${XATTR_SIZE_MAX} are allowed`)
  return value
}
