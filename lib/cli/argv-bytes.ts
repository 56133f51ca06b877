// Command-line arguments are bytes too: Node decodes process.argv as UTF-8 and turns bytes that
// are not UTF-8 into U+FFFD, so a path like $'caf\xe9.txt' could not be named. Linux keeps the
// raw arguments in /proc/self/cmdline: take them from there, in name form (name-bytes.ts).
import { readFileSync } from 'node:fs'
import { nameFromBytes } from '../name-bytes.js'

/** `argv` (the trailing arguments of this process) with every argument in name form. */
export function argvInNameForm(argv: string[]): string[] {
  if (!argv.some((a) => a.includes('\ufffd'))) return argv // nothing was lost
  let raw: Buffer
  try {
    raw = readFileSync('/proc/self/cmdline')
  } catch {
    return argv // not Linux, or no /proc: keep what Node gave
  }
  const all: Buffer[] = []
  for (let start = 0; start < raw.length; ) {
    let end = raw.indexOf(0, start)
    if (end < 0) end = raw.length
    all.push(raw.subarray(start, end))
    start = end + 1
  }
  const tail = all.slice(all.length - argv.length)
  // Only where the raw argument is the one Node decoded (a process that rewrote its title has
  // another cmdline): the same after Node's lossy decoding.
  return argv.map((arg, i) => (tail[i] !== undefined && tail[i]!.toString('utf8') === arg ? nameFromBytes(tail[i]!) : arg))
}
