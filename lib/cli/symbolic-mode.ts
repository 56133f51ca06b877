// chmod(1)'s mode argument: octal (644, 4755) or symbolic clauses (u+x, go-w, a=r, u=g, +X),
// applied as GNU chmod applies them with umask 0: a clause without u/g/o/a means all of them.

const WHO = { u: 0o4700, g: 0o2070, o: 0o1007 } as const
const PERM = { r: 0o444, w: 0o222, x: 0o111, s: 0o6000, t: 0o1000 } as const
const CLAUSE = /^([ugoa]*)((?:[-+=](?:[ugo]|[rwxXst]*))+)$/
const ACTION = /([-+=])([ugo]|[rwxXst]*)/g

/** A change of mode: the new permission bits from the old ones and whether the object is a directory. */
export type ModeChange = (mode: number, isDirectory: boolean) => number

/** Parse MODE; throws an Error saying what is wrong. */
export function parseMode(text: string): ModeChange {
  if (/^[0-7]{1,5}$/.test(text)) {
    const bits = parseInt(text, 8)
    if (bits > 0o7777) throw new Error(`octal mode ${text} is over 7777`)
    // As chmod(1): a directory keeps its setuid/setgid bits unless five digits say otherwise.
    return (mode, isDirectory) => (isDirectory && text.length < 5 ? bits | (mode & 0o6000) : bits)
  }
  const clauses = text.split(',').map((clause) => {
    const m = CLAUSE.exec(clause)
    if (!m) throw new Error(`"${clause}" is not an octal mode or a symbolic one like u+x, go-w, a=r`)
    const who = m[1]!.includes('a') || m[1] === '' ? 0o7777 : [...m[1]!].reduce((mask, c) => mask | WHO[c as keyof typeof WHO], 0)
    const actions = [...m[2]!.matchAll(ACTION)].map((a) => ({ op: a[1]!, perms: a[2]! }))
    return { who, actions }
  })
  return (start, isDirectory) => {
    let mode = start & 0o7777
    for (const { who, actions } of clauses) {
      for (const { op, perms } of actions) {
        let bits = 0
        if (perms === 'u' || perms === 'g' || perms === 'o') {
          // Copy that class's rwx onto the others: u=g takes g's bits.
          const shift = perms === 'u' ? 6 : perms === 'g' ? 3 : 0
          bits = ((mode >> shift) & 7) * 0o111
        } else {
          for (const c of perms) {
            if (c === 'X') {
              if (isDirectory || (mode & 0o111) !== 0) bits |= PERM.x
            } else {
              bits |= PERM[c as keyof typeof PERM]
            }
          }
        }
        // s means setuid for u, setgid for g; t only counts for all or o.
        const mask = who & (0o777 | (who & 0o4700 ? 0o4000 : 0) | (who & 0o2070 ? 0o2000 : 0) | (who & 0o1007 ? 0o1000 : 0))
        bits &= mask
        if (op === '+') mode |= bits
        else if (op === '-') mode &= ~bits
        else mode = (mode & ~(mask & ~(isDirectory ? 0o6000 : 0))) | bits
      }
    }
    return mode & 0o7777
  }
}
