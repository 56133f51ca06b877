// Store files are never reached through symlinks (SPEC §8). Each file of an image and a tree store
// is replaced in turn by a symlink (to a copy outside the store, which must stay byte-identical:
// following the link would have "worked" and written there), a directory, a FIFO, and a file
// owned by another uid; every command refuses the store with EUNSAFE (fsck reports it), nothing
// outside the store changes, and once the file is put back the store works again.
import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { chownSync, cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { checkStore, createStore, ImageStore, isPagecowError, openStore, TreeStore } from '../lib/index.js'
import { runCli } from './fixtures/cli-io.js'
import { cannotRun } from './fixtures/cannot-run.js'

const OTHER_UID = 12345
type Planted = 'symlink' | 'directory' | 'fifo' | 'other owner'
const PLANTED: Planted[] = ['symlink', 'directory', 'fifo', 'other owner']

/** Every byte, size, mode and mtime under `path` (a file or a directory), as one hash. */
function identity(path: string): string {
  const hash = createHash('sha256')
  const walk = (p: string) => {
    const st = lstatSync(p)
    hash.update(`${p.slice(path.length)}:${st.mode}:${st.size}:${st.mtimeMs}:${st.uid};`)
    if (st.isDirectory()) for (const name of readdirSync(p).sort()) walk(join(p, name))
    else if (st.isFile()) hash.update(readFileSync(p))
  }
  walk(path)
  return hash.digest('hex')
}

let outputs = 0
/** A new export output name in `dir`. */
function output(dir: string, name: string): string {
  return join(dir, `${name}-${++outputs}`)
}

interface StoreCase {
  kind: 'image' | 'tree'
  store: string
  /** Files to plant over, relative to the store; which exist at rest depends on the kind. */
  files: string[]
  /** CLI commands run against the planted store; each must refuse it. */
  commands: Array<() => string[]>
  /**
   * Files opened only when a command reaches them (a tree's upper/<id>, one per file): commands
   * that never touch them may work, and opening the store does not look at them.
   */
  lazy: string[]
  /** A command that works on a sound store. */
  check: string[]
}

async function imageCase(dir: string): Promise<StoreCase> {
  const store = join(dir, 'image.cow')
  writeFileSync(join(dir, 'lower.img'), Buffer.alloc(64 * 1024, 7))
  const s = await ImageStore.create(store, { lower: join(dir, 'lower.img') })
  await s.write(4096, Buffer.from('upper bytes'))
  await s.close()
  writeFileSync(join(store, 'mount.log'), 'a log\n')
  return {
    kind: 'image',
    store,
    files: ['lock', 'upper.img', 'pagecow.db', 'pagecow.db-wal', 'pagecow.db-shm', 'mount.log', 'generation', 'flux'],
    commands: [() => ['write', store, '--offset', '0'], () => ['read', store, '--offset', '4096', '--length', '11'], () => ['inspect', store], () => ['map', store], () => ['export', store, output(dir, 'image-out')]],
    lazy: [],
    check: ['read', store, '--offset', '4096', '--length', '11'],
  }
}

async function treeCase(dir: string): Promise<StoreCase> {
  const store = join(dir, 'tree.cow')
  mkdirSync(join(dir, 'lower'))
  writeFileSync(join(dir, 'lower', 'f'), Buffer.alloc(3 * 4096, 'l'))
  const s = await TreeStore.create(store, { lower: join(dir, 'lower') })
  const h = await s.open('/f', 'r+')
  await h.write(4096, Buffer.from('upper bytes'))
  await h.close()
  await s.close()
  writeFileSync(join(store, 'mount.log'), 'a log\n')
  const [id] = readdirSync(join(store, 'upper'))
  return {
    kind: 'tree',
    store,
    files: ['lock', 'upper', `upper/${id}`, 'pagecow.db', 'pagecow.db-wal', 'pagecow.db-shm', 'mount.log'],
    commands: [() => ['write', store, '/f', '--offset', '0'], () => ['read', store, '/f', '--offset', '4096', '--length', '11'], () => ['inspect', store, '/f'], () => ['export', store, output(dir, 'tree-out')], () => ['ls', store, '/']],
    lazy: [`upper/${id}`],
    check: ['read', store, '/f', '--offset', '4096', '--length', '11'],
  }
}

/**
 * Put `planted` at `path` (the original kept aside); returns what must not change outside the
 * store and how to put everything back.
 */
function plant(outside: string, path: string, planted: Planted): { target?: string; restore: () => void } {
  const existed = existsSync(path)
  const aside = `${path}.aside`
  const isDir = existed && statSync(path).isDirectory()
  if (planted === 'other owner') {
    if (!existed) writeFileSync(path, '')
    const { uid, gid } = lstatSync(path)
    chownSync(path, OTHER_UID, OTHER_UID)
    return { restore: () => (existed ? chownSync(path, uid, gid) : rmSync(path)) }
  }
  if (existed) renameSync(path, aside)
  let target: string | undefined
  if (planted === 'symlink') {
    target = join(outside, `target-${path.replace(/[^\w]/g, '_')}`)
    if (existed) cpSync(aside, target, { recursive: true, preserveTimestamps: true })
    else writeFileSync(target, 'a file outside the store\n')
    symlinkSync(target, path)
  } else if (planted === 'directory') {
    // The upper directory of a tree store is one already: a regular file in its place instead.
    if (isDir) writeFileSync(path, 'not a directory\n')
    else mkdirSync(path)
  } else {
    execFileSync('mkfifo', [path])
  }
  return {
    ...(target ? { target } : {}),
    restore: () => {
      rmSync(path, { recursive: true, force: true })
      if (existed) renameSync(aside, path)
    },
  }
}

async function refusesPlanted(t: Test, c: StoreCase, outside: string): Promise<void> {
  for (const file of c.files) {
    for (const planted of PLANTED) {
      const path = join(c.store, file)
      const { target, restore } = plant(outside, path, planted)
      const before = target ? identity(target) : undefined
      const what = `${c.kind} store, ${file} is ${planted === 'other owner' ? 'owned by another uid' : `a ${planted}`}`
      try {
        for (const command of c.commands) {
          const args = command()
          if (c.lazy.includes(file) && args[0] === 'ls') continue // lists names only: never opens a file's data
          const r = await runCli(args, { stdin: 'X' })
          t.equal(r.code, 1, `${what}: pagecow ${args[0]} exits 1`)
          t.match(r.stderr, /\(EUNSAFE\)\n$/, `${what}: pagecow ${args[0]} refuses it with EUNSAFE`, { stderr: r.stderr })
          if (args[0] === 'export') t.notOk(existsSync(args[2]!), `${what}: the refused export left nothing at its output`)
        }
        const fsck = await runCli(['fsck', c.store, '--json'])
        const report = JSON.parse(fsck.stdout || '{"problems":[]}') as { problems: Array<{ code: string; message: string }> }
        t.ok(report.problems.some((p) => p.code === 'EUNSAFE' && p.message.includes(file.split('/')[0]!)), `${what}: fsck reports EUNSAFE naming it`, { problems: report.problems })
        if (!c.lazy.includes(file)) await t.rejects(openStore(c.store, { readOnly: true }), { code: 'EUNSAFE' }, `${what}: openStore (read-only) refuses it`)
        if (target) t.equal(identity(target), before, `${what}: the file outside the store is unchanged`)
      } finally {
        restore()
      }
      const r = await runCli(c.check)
      t.equal(r.code, 0, `${what}: put back, the store works again${r.stderr ? `: ${r.stderr.trim()}` : ''}`)
      if (target) rmSync(target, { recursive: true, force: true })
    }
  }
  const report = await checkStore(c.store)
  t.same(report.problems, [], `${c.kind} store: fsck is clean at the end`)
}

t.test('every store file replaced by a symlink, a directory, a FIFO or another uid’s file is refused', async (t) => {
  if (process.getuid?.() !== 0) return cannotRun(t, 'needs root to make files owned by another uid')
  const dir = t.testdir()
  const outside = join(dir, 'outside')
  mkdirSync(outside)
  await t.test('image store', async (t) => refusesPlanted(t, await imageCase(dir), outside))
  await t.test('tree store', async (t) => refusesPlanted(t, await treeCase(dir), outside))
})

t.test('mount refuses a planted mount.log before anything is mounted', async (t) => {
  const dir = t.testdir()
  const c = await imageCase(dir)
  mkdirSync(join(dir, 'mnt'))
  for (const planted of ['symlink', 'fifo'] as const) {
    const { target, restore } = plant(dir, join(c.store, 'mount.log'), planted)
    const before = target ? identity(target) : undefined
    try {
      const r = await runCli(['mount', c.store, join(dir, 'mnt')])
      t.equal(r.code, 1, `mount.log is a ${planted}: pagecow mount exits 1`)
      t.match(r.stderr, /mount\.log.*\(EUNSAFE\)/, `mount.log is a ${planted}: EUNSAFE`)
      if (target) t.equal(identity(target), before, 'the symlink’s target is unchanged')
    } finally {
      restore()
    }
  }
})

t.test('root creating a store in a user’s directory gives every file to that user', async (t) => {
  if (process.getuid?.() !== 0) return cannotRun(t, 'needs root to create files for another uid')
  const dir = t.testdir()
  mkdirSync(join(dir, 'lower'))
  writeFileSync(join(dir, 'lower', 'f'), 'lower\n')
  writeFileSync(join(dir, 'lower.img'), Buffer.alloc(8192))
  for (const [name, lower] of [['image', join(dir, 'lower.img')], ['tree', join(dir, 'lower')]] as const) {
    const store = join(dir, `${name}.cow`)
    mkdirSync(store)
    chownSync(store, OTHER_UID, OTHER_UID)
    await (await createStore(store, { lower })).close()
    const s = await openStore(store)
    if (s.kind === 'image') await s.write(0, Buffer.from('x'))
    else await (await s.open('/f', 'r+')).write(0, Buffer.from('x'))
    await s.flush()
    const owners = new Set<number>()
    const walk = (p: string) => {
      owners.add(lstatSync(p).uid)
      if (lstatSync(p).isDirectory()) for (const n of readdirSync(p)) walk(join(p, n))
    }
    walk(store)
    t.same([...owners], [OTHER_UID], `${name} store: every file belongs to the directory's owner`)
    await s.close()
    t.same((await checkStore(store)).problems, [], `${name} store: fsck is clean`)
  }
})

t.test('a symlink as the store directory itself is followed (the user named it)', async (t) => {
  const dir = t.testdir()
  const c = await imageCase(dir)
  symlinkSync(c.store, join(dir, 'alias'))
  const s = await ImageStore.open(join(dir, 'alias'), { readOnly: true })
  t.equal((await s.read(4096, 11)).toString(), 'upper bytes', 'the store opens through the link')
  await s.close()
  t.ok(isPagecowError(await ImageStore.open(join(dir, 'nowhere')).catch((e: unknown) => e), 'ENOENT'), 'a missing store is still ENOENT')
})
