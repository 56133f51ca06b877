// A FUSE mount is nosuid,nodev unless asked (`--suid`, `--dev`), as fusermount mounts: a
// set-user-ID program in the lower runs with its caller's rights through an --allow-other mount,
// and a device node in the lower cannot be opened as a device. Checked with real programs run by
// an unprivileged user through a real mount, against the same files run from the lower itself,
// and in /proc/self/mountinfo.
import { execFileSync } from 'node:child_process'
import { chmodSync, chownSync, copyFileSync, mkdirSync, openSync, closeSync, readFileSync, readSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { createStore, StoreMount, TreeStore } from '../lib/index.js'
import { runCli } from './fixtures/cli-io.js'
import { checkNothingLeftMounted, fuseUsable, haveTools, mountStore, mountTestDir, run, unmountAndWait } from './fixtures/fuse-mounted.js'

const NOBODY = 65534

/** The per-mount options of the mount at `mountpoint` in /proc/self/mountinfo (field 6). */
function mountOptions(mountpoint: string): string[] {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const fields = line.split(' ')
    if (fields[4] === mountpoint) return (fields[5] ?? '').split(',')
  }
  throw new Error(`${mountpoint} is not in /proc/self/mountinfo`)
}

/** A lower with a set-user-ID root copy of id(1) and a character device 1:3 (a /dev/null). */
function buildLower(dir: string): string {
  const lower = join(dir, 'lower')
  mkdirSync(join(lower, 'bin'), { recursive: true })
  mkdirSync(join(lower, 'dev'))
  const id = execFileSync('sh', ['-c', 'command -v id'], { encoding: 'utf8' }).trim()
  copyFileSync(id, join(lower, 'bin', 'id-suid'))
  chownSync(join(lower, 'bin', 'id-suid'), 0, 0)
  chmodSync(join(lower, 'bin', 'id-suid'), 0o4755)
  execFileSync('mknod', ['-m', '0666', join(lower, 'dev', 'null'), 'c', '1', '3'])
  return lower
}

/** The effective uid `program -u` reports when run as nobody (an id(1) prints it). */
async function euidAsNobody(t: Test, program: string): Promise<string> {
  const r = await run('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--', program, '-u'])
  t.equal(r.code, 0, `${program} runs as nobody${r.stderr ? `: ${r.stderr.trim()}` : ''}`)
  return r.stdout.trim()
}

/** What opening `path` for reading does: 'opened' (and reading gives EOF), or the error code. */
function openResult(path: string): string {
  let fd: number
  try {
    fd = openSync(path, 'r')
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err)
  }
  try {
    return readSync(fd, Buffer.alloc(16)) === 0 ? 'opened' : 'opened, but read bytes'
  } finally {
    closeSync(fd)
  }
}

t.test('nosuid,nodev by default; --suid and --dev lift them', async (t) => {
  if (!fuseUsable(t) || !haveTools(t, ['setpriv', 'mknod'], 'util-linux and coreutils run the programs as another user')) return
  const dir = mountTestDir(t)
  const lower = buildLower(dir)
  const lowerOptions = mountOptions(execFileSync('findmnt', ['-n', '-o', 'TARGET', '--target', lower], { encoding: 'utf8' }).trim())

  // The peer: the same files straight from the lower's file system.
  if (!lowerOptions.includes('nosuid')) {
    t.equal(await euidAsNobody(t, join(lower, 'bin', 'id-suid')), '0', 'from the lower itself, the set-user-ID bit makes nobody root')
  }
  if (!lowerOptions.includes('nodev')) t.equal(openResult(join(lower, 'dev', 'null')), 'opened', 'from the lower itself, the device opens')

  // Each flag alone is checked through the library below (mountinfo); here, real programs.
  for (const [name, args, suid, dev] of [
    ['default', [], false, false],
    ['--suid --dev', ['--suid', '--dev'], true, true],
  ] as const) {
    await t.test(name, async (t) => {
      const store = join(dir, `store-${name.replace(/[^a-z]/g, '')}`)
      await TreeStore.create(store, { lower }).then((s) => s.close())
      const mnt = join(dir, `mnt-${name.replace(/[^a-z]/g, '')}`)
      mkdirSync(mnt)
      const m = await mountStore(t, store, mnt, ['--allow-other', ...args])
      const options = mountOptions(m.mountpoint)
      t.equal(options.includes('nosuid'), !suid, `mountinfo ${suid ? 'lacks' : 'shows'} nosuid (${options.join(',')})`)
      t.equal(options.includes('nodev'), !dev, `mountinfo ${dev ? 'lacks' : 'shows'} nodev`)
      t.equal(await euidAsNobody(t, join(mnt, 'bin', 'id-suid')), suid ? '0' : String(NOBODY), suid ? 'the set-user-ID bit is honoured' : 'the set-user-ID bit is ignored: nobody stays nobody')
      t.equal(openResult(join(mnt, 'dev', 'null')), dev ? 'opened' : 'EACCES', dev ? 'the device node opens as a device' : 'opening the device node is refused')
      await unmountAndWait(t, m)
    })
  }
})

t.test('the library mounts nosuid,nodev unless asked', async (t) => {
  if (!fuseUsable(t)) return
  const dir = mountTestDir(t)
  mkdirSync(join(dir, 'lower'))
  const store = await createStore(join(dir, 'store'), { lower: join(dir, 'lower') })
  t.teardown(() => store.close())
  for (const [options, expected] of [
    [{}, ['nosuid', 'nodev']],
    [{ suid: true }, ['nodev']],
    [{ dev: true }, ['nosuid']],
    [{ suid: true, dev: true }, []],
  ] as const) {
    const mnt = join(dir, `mnt-${Object.keys(options).join('-') || 'default'}`)
    mkdirSync(mnt)
    const mount = await StoreMount.mount(store as TreeStore, mnt, options)
    try {
      const shown = mountOptions(mount.mountpoint).filter((o) => o === 'nosuid' || o === 'nodev')
      t.same(shown, expected, `${JSON.stringify(options)}: ${expected.join(',') || 'neither nosuid nor nodev'}`)
    } finally {
      await mount.unmount()
    }
  }
})

t.test('bad values for the new options', async (t) => {
  const dir = t.testdir()
  mkdirSync(join(dir, 'lower'))
  mkdirSync(join(dir, 'mnt'))
  const store = await TreeStore.create(join(dir, 'store'), { lower: join(dir, 'lower') })
  t.teardown(() => store.close())
  for (const [name, options] of [
    ['suid as a string', { suid: 'yes' }],
    ['dev as a number', { dev: 1 }],
    ['a misspelled suid', { setuid: true }],
    ['a misspelled dev', { devices: true }],
  ] as const) {
    await t.rejects(StoreMount.mount(store, join(dir, 'mnt'), options as never), { code: 'EINVAL' }, `StoreMount.mount: ${name}`)
  }
  for (const [name, args, message] of [
    ['--suid with a value', ['--suid=yes'], /does not take an argument|--suid/],
    ['--dev with a value', ['--dev=1'], /does not take an argument|--dev/],
    ['a misspelled --setuid', ['--setuid'], /unknown option '--setuid'/],
    ['--nodev (not an option: nodev is the default)', ['--nodev'], /unknown option '--nodev'/],
  ] as const) {
    const r = await runCli(['mount', join(dir, 'store'), join(dir, 'mnt'), ...args])
    t.equal(r.code, 2, `pagecow mount ${args.join(' ')}: ${name} exits 2 (a usage error)`)
    t.match(r.stderr, message, `${name}: says what is wrong`)
    t.match(r.stderr, /\(EINVAL\)/, `${name}: EINVAL`)
  }
})

checkNothingLeftMounted(t)
