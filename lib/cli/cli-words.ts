// Library errors told in the command line's words. The library names its own calls ("rename:",
// "open:"), which is right for library users; a person typed `pagecow mv` or `pagecow read`.
import { isPagecowError, PagecowError } from '../errors.js'

/** The store methods whose names start the library's messages ("open: /etc is a directory"). */
const API_CALLS = new Set([
  'open', 'stat', 'readdir', 'readlink', 'rename', 'rm', 'rmdir', 'mkdir', 'mknod', 'symlink', 'link', 'unlink',
  'create', 'chmod', 'chown', 'utimens', 'truncate', 'zero', 'discard', 'read', 'write', 'map', 'extents',
  'fileInfo', 'setxattr', 'getxattr', 'removexattr', 'listxattr',
])

/** `err` with the library call that starts its message replaced by `command`; anything else as it is. */
export function inCommandWords(err: unknown, command: string | undefined): unknown {
  if (!command || !isPagecowError(err)) return err
  const match = /^([a-zA-Z]+)((?: "[^"]*")?): /.exec(err.message)
  if (!match || !API_CALLS.has(match[1]!) || match[1] === command) return err
  return new PagecowError(err.code, `${command}${match[2]}: ${err.message.slice(match[0].length)}`, { cause: err })
}
