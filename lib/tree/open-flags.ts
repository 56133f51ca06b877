// open(2) flags of tree-mode handles: numeric (fs.constants) or Node's string forms.
import { constants } from '../fs.js'
import { PagecowError } from '../errors.js'

/** What open() was asked for, decoded. */
export interface OpenFlags {
  read: boolean
  write: boolean
  create: boolean
  exclusive: boolean
  truncate: boolean
  append: boolean
  directory: boolean
}

const STRING_FLAGS: Record<string, number> = {
  r: constants.O_RDONLY,
  'r+': constants.O_RDWR,
  w: constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC,
  'w+': constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC,
  wx: constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_EXCL,
  'wx+': constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC | constants.O_EXCL,
  a: constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND,
  'a+': constants.O_RDWR | constants.O_CREAT | constants.O_APPEND,
  ax: constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | constants.O_EXCL,
  'ax+': constants.O_RDWR | constants.O_CREAT | constants.O_APPEND | constants.O_EXCL,
}

const O_ACCMODE = 3

/**
 * Decode `flags`: O_RDONLY/O_WRONLY/O_RDWR with O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_DIRECTORY.
 * O_NOFOLLOW is implied (the path API never follows a symlink); other bits (O_CLOEXEC,
 * O_NONBLOCK, O_LARGEFILE, O_NOATIME, O_SYNC...) do not change what the store does and are ignored.
 */
export function parseOpenFlags(flags: unknown): OpenFlags {
  let n: number
  if (typeof flags === 'string') {
    const mapped = STRING_FLAGS[flags]
    if (mapped === undefined) throw new PagecowError('EINVAL', `open: unknown flags "${flags}" (use r, r+, w, w+, wx, a, a+ or numeric O_* flags)`)
    n = mapped
  } else if (typeof flags === 'number' && Number.isSafeInteger(flags) && flags >= 0) {
    n = flags
  } else {
    throw new PagecowError('EINVAL', 'open: flags must be a non-negative integer or a string like "r+"')
  }
  const access = n & O_ACCMODE
  if (access === O_ACCMODE) throw new PagecowError('EINVAL', 'open: the access mode must be O_RDONLY, O_WRONLY or O_RDWR')
  return {
    read: access === constants.O_RDONLY || access === constants.O_RDWR,
    write: access === constants.O_WRONLY || access === constants.O_RDWR,
    create: (n & constants.O_CREAT) !== 0,
    exclusive: (n & constants.O_EXCL) !== 0,
    truncate: (n & constants.O_TRUNC) !== 0,
    append: (n & constants.O_APPEND) !== 0,
    directory: (n & constants.O_DIRECTORY) !== 0,
  }
}
