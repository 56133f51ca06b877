// chmod(1)'s mode argument: octal (644, 4755, 000644) or symbolic clauses (u+x, go-w, a=r, u=g,
// +X, -644), applied by GNU chmod's rules with umask 0: a clause without u/g/o/a means all of them.
import { PagecowError } from '../errors.js'

/** The bits a mode may set: chmod(1) refuses an octal mode above this. */
const ALL = 0o7777
const SETUID = 0o4000
const SETGID = 0o2000
const EXEC = 0o111
const WHO = { u: 0o4700, g: 0o2070, o: 0o1007, a: ALL } as const
const PERM = { r: 0o444, w: 0o222, x: EXEC, X: 0, s: SETUID | SETGID, t: 0o1000 } as const
/** `u=g` copies a class's rwx: the class's bits, read from the current mode. */
const CLASS = { u: 0o700, g: 0o070, o: 0o007 } as const
/** One operator and what follows it: a class to copy, an octal number, or permission letters. */
const ACTION = /([-+=])([ugo]|[0-7]+|[rwxXst]*)/y

const FORMS = 'use octal (644, 4755) or symbolic clauses joined by commas (u+x,go-w, a=r, u=g, +X)'

/** A change of mode: the new permission bits from the old ones and whether the object is a directory. */
export type ModeChange = (mode: number, isDirectory: boolean) => number

type Op = '+' | '-' | '='

/** One operation of a mode, as chmod(1) compiles it. */
interface Step {
  op: Op
  /** The bits the clause's u/g/o/a name; 0 when it names none (with umask 0: all of them). */
  affected: number
  /** The bits to add, remove or set; for a copy, the class to copy from. */
  value: number
  /** Copy a class's bits (`u=g`), or add x where some x is set or on a directory (`X`). */
  kind: 'bits' | 'copy' | 'X'
  /** On a directory, setuid and setgid change only if mentioned here (`chmod 755` keeps them). */
  mentioned: number
}

/** Parse MODE as chmod(1) does; throws EINVAL for what chmod(1) calls an invalid mode. */
export function parseMode(text: string): ModeChange {
  const steps = /^[0-7]+$/.test(text) ? [octalStep(text)] : text.split(',').flatMap((clause) => clauseSteps(clause, text))
  return (mode, isDirectory) => steps.reduce((m, step) => apply(step, m & ALL, isDirectory), mode & ALL)
}

/** `644`, `4755`, `000644`: set every bit; under five digits a directory keeps setuid/setgid unless set. */
function octalStep(text: string): Step {
  const value = octalValue(text, text)
  const mentioned = text.length < 5 ? (value & (SETUID | SETGID)) | 0o1777 : ALL
  return { op: '=', affected: ALL, value, kind: 'bits', mentioned }
}

/** Any number of digits, as long as the value is at most 7777 (leading zeros are fine). */
function octalValue(digits: string, text: string): number {
  const significant = digits.replace(/^0+/, '')
  const value = significant.length > 4 ? Infinity : parseInt(significant || '0', 8)
  if (value > ALL) throw new PagecowError('EINVAL', `invalid mode "${text}": octal modes go up to 7777`)
  return value
}

/** `go-w+x`: who, then one or more actions; `+644` (octal after the operator) only alone and last. */
function clauseSteps(clause: string, text: string): Step[] {
  const where = clause === text ? '' : ` ("${clause}" is not a clause chmod(1) takes)`
  const invalid = () => new PagecowError('EINVAL', `invalid mode "${text}"${where}; ${FORMS}`)
  const who = /^[ugoa]*/.exec(clause)![0]
  const affected = [...who].reduce((bits, c) => bits | WHO[c as keyof typeof WHO], 0)
  const steps: Step[] = []
  ACTION.lastIndex = who.length
  let action: RegExpExecArray | null
  while (ACTION.lastIndex < clause.length && (action = ACTION.exec(clause))) {
    const op = action[1] as Op
    const what = action[2]!
    if (/^[0-7]/.test(what)) {
      if (who !== '' || ACTION.lastIndex < clause.length) throw invalid()
      steps.push({ op, affected: ALL, value: octalValue(what, text), kind: 'bits', mentioned: ALL })
    } else if (what in CLASS) {
      const value = CLASS[what as keyof typeof CLASS]
      steps.push({ op, affected, value, kind: 'copy', mentioned: affected ? affected & value : value })
    } else {
      const value = [...what].reduce((bits, c) => bits | PERM[c as keyof typeof PERM], 0)
      steps.push({ op, affected, value, kind: what.includes('X') ? 'X' : 'bits', mentioned: affected ? affected & value : value })
    }
  }
  if (steps.length === 0 || ACTION.lastIndex !== clause.length) throw invalid()
  return steps
}

function apply(step: Step, mode: number, isDirectory: boolean): number {
  const omit = isDirectory ? (SETUID | SETGID) & ~step.mentioned : 0
  let value = step.value
  if (step.kind === 'copy') {
    const bits = value & mode
    value = (bits & 0o444 ? 0o444 : 0) | (bits & 0o222 ? 0o222 : 0) | (bits & EXEC ? EXEC : 0)
  } else if (step.kind === 'X' && (isDirectory || mode & EXEC)) {
    value |= EXEC
  }
  value &= (step.affected || ALL) & ~omit
  if (step.op === '+') return mode | value
  if (step.op === '-') return mode & ~value
  const kept = (step.affected ? ALL & ~step.affected : 0) | omit
  return (mode & kept) | value
}
