// chmod's MODE argument, judged against the real chmod(1) (GNU coreutils, umask 0) on a real
// file and a real directory, from several starting modes.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { chmodSync, mkdirSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseMode } from '../lib/cli/symbolic-mode.js'
import type { TapTest } from './fixtures/tap-test.js'
import { cannotRun } from './fixtures/cannot-run.js'

const SPECS = [
  '644', '0755', '4755', '7777', '0', 'u+x', 'go-w', 'a=r', 'u=rwx,g=rx,o=', '+x', '-x', '=r', 'a+X', 'u+X', 'g+s', 'u+s', 'o+s',
  '+t', 'o+t', 'u+t', 'u=g', 'g=u', 'o=u', 'ug+rw', 'u-r,g+w,o=x', 'a-rwx', 'g=', 'u+rw-x', 'go=u-w', '=', 'a=rwX', 'u=s', 'g-s', '+st', 'a-x,a+X', 'a-x+X', 'u-x,g+X',
  // Five or more octal digits (leading zeros) set setuid/setgid on a directory too; fewer keep them.
  '000644', '00644', '00000', '007777', '000000755', '0000000000000000000644', '2755', '02755', '6755', '1755',
  // Modes that begin with '-' (the CLI takes them without '--'), and octal after the operator.
  '-w', '-r', '-x,u+w', '-s', '-t', '--w', '-644', '+644', '=644', '=0', '+4000', '-7777', '+644,u+x', '=64,-x', '+-644', '+0000000644',
  // Common forms.
  'u=rw,go=', 'a-x', 'a+rwx', 'go=', 'ug=rwx,o=', 'u=rwx,g=rx,o=rx', 'g+s,o=u', 'g=s', 'o=s', '=s', '+s', '=t', 'a=st', 'o-t', 'u=g=o', 'g=o-x', 'u+g', 'a-X', 'u=rX', 'g+w,o-rwx',
]
const STARTS = [0o644, 0o755, 0o4755, 0o2750, 0o6755, 0o1777, 0o000, 0o600]

/** Skip with the reason printed; under PAGECOW_REQUIRE_ALL=1 (CI) a failure instead. */
function notRoot(t: TapTest): void {
  cannotRun(t, 'the chmod(1) reference needs root (chmod g+s is silently dropped for non-members otherwise)')
}

/** Set each object to its start mode, run chmod(1) with umask 0 on them all, return their new modes. Throws if chmod(1) refuses the mode. */
function realChmod(spec: string, objects: ReadonlyArray<{ path: string; start: number }>): number[] {
  for (const { path, start } of objects) chmodSync(path, start)
  execFileSync('sh', ['-c', 'umask 0; exec chmod -- "$@"', 'sh', spec, ...objects.map((o) => o.path)], { stdio: 'pipe' })
  return objects.map(({ path }) => statSync(path).mode & 0o7777)
}

t.test('parseMode gives what chmod(1) gives, for files and directories', async (t) => {
  if (process.getuid?.() !== 0) {
    // As non-root, chmod g+s on a file of another group is silently dropped: compare only as root.
    notRoot(t)
    return
  }
  const dir = t.testdir()
  // A file and a directory per starting mode: one chmod(1) run per spec covers them all.
  const objects = STARTS.flatMap((start) => [false, true].map((isDirectory) => ({ path: join(dir, `${isDirectory ? 'd' : 'f'}${start.toString(8)}`), start, isDirectory })))
  for (const { path, isDirectory } of objects) {
    if (isDirectory) mkdirSync(path)
    else writeFileSync(path, '')
  }
  let checked = 0
  for (const spec of SPECS) {
    const change = parseMode(spec)
    const modes = realChmod(spec, objects)
    objects.forEach(({ start, isDirectory }, i) => {
      const expected = modes[i]!
      const got = change(start, isDirectory)
      if (got !== expected) t.fail(`${spec} on a ${isDirectory ? 'directory' : 'file'} of mode ${start.toString(8)}: chmod(1) gives ${expected.toString(8)}, parseMode ${got.toString(8)}`)
      checked++
    })
  }
  t.pass(`${checked} cases agree with chmod(1)`)
})

t.test('what chmod(1) refuses is refused with a reason; odd forms it takes are taken', async (t) => {
  if (process.getuid?.() !== 0) {
    notRoot(t)
    return
  }
  const file = join(t.testdir(), 'f')
  writeFileSync(file, '')
  const texts = [
    ...['9', '8', '17777', 'x', 'u', 'u+', 'z+x', 'u+q', '+u+', ',', 'u+x,', ' 644', '-', 'ug', '00755', '0o644', '+', 'a=', 'uu+x', 'u+x,go-w', '', 'rwx', '+rwx '],
    // Octal: any number of leading zeros, nothing above 7777.
    ...['017777', '0010000', '000017777', '77777', '10000', '000000', '0000000000000644', '-0', '644 ', '0x1ff', '7778'],
    // Octal after the operator: no u/g/o/a, and last in its clause.
    ...['u+644', 'a=0', '+644x', '+17777', '+64+x', '+644-x', 'a+1', '0+x', '644,u+x', '7+', '+,1'],
    // A copied class stands alone.
    ...['u=gx', '+ux', 'u=g,', ',,u+x', '-wq', '-w,', '--', '-=', 'u=uu'],
  ]
  for (const text of texts) {
    let expected: number | undefined
    try {
      expected = realChmod(text, [{ path: file, start: 0o644 }])[0]
    } catch {
      expected = undefined // chmod(1) said "invalid mode"
    }
    if (expected === undefined) t.throws(() => parseMode(text), { name: 'PagecowError', code: 'EINVAL' }, `${JSON.stringify(text)} is refused, as chmod(1) refuses it`)
    else t.equal(parseMode(text)(0o644, false), expected, `${JSON.stringify(text)} gives ${expected.toString(8)}, as chmod(1)`)
  }
})
