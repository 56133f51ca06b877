// `--lower A:B:C`: several lowers, leftmost on top, written as overlayfs's lowerdir option is: a
// ':' inside a path is escaped as '\:' and a '\' as '\\'.
import { PagecowError } from '../errors.js'

/** The paths of a `--lower` value, in order; EINVAL for an empty one (A::B) or a dangling '\'. */
export function parseLowerList(value: string): string[] {
  const paths: string[] = []
  let path = ''
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!
    if (c === '\\') {
      const next = value[i + 1]
      if (next !== ':' && next !== '\\') throw new PagecowError('EINVAL', `--lower: a '\\' must escape ':' or '\\' (in ${JSON.stringify(value)})`)
      path += next
      i++
    } else if (c === ':') {
      paths.push(path)
      path = ''
    } else {
      path += c
    }
  }
  paths.push(path)
  if (paths.some((p) => p === '')) throw new PagecowError('EINVAL', `--lower: an empty path in ${JSON.stringify(value)} (lowers are separated by ':'; write a ':' inside a path as '\\:')`)
  return paths
}
