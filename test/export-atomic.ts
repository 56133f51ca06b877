// An export is never half done: image and tree exports are written under a temporary name beside
// the output and renamed into place when complete. A failed, aborted or interrupted (SIGINT,
// SIGTERM) export leaves nothing at the output and no temporary; a killed one (SIGKILL) leaves no
// file at the output, and the next run is not confused by its leftover. `export STORE -` writes
// the image to standard output, byte for byte what a file export holds.
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { exportImage, exportImageToStream, exportTree, ImageStore, isExportTemporary, isPagecowError, TreeStore } from '../lib/index.js'
import { childEnv } from './fixtures/child-env.js'
import { runCli } from './fixtures/cli-io.js'
import { pagecow, ROOT, waitFor } from './fixtures/fuse-mounted.js'
import { onSmallFs } from './fixtures/small-fs.js'

const MiB = 1024 * 1024

/** Names in `dir` that are export temporaries. */
function temporaries(dir: string): string[] {
  return readdirSync(dir).filter(isExportTemporary)
}

/** An image store over a lower of `mib` MiB of non-zero data (every block is copied by an export). */
async function imageStore(dir: string, mib: number): Promise<string> {
  const lower = join(dir, 'lower.img')
  const fd = openSync(lower, 'w')
  const block = Buffer.alloc(MiB)
  for (let i = 0; i < block.length; i++) block[i] = (i % 251) + 1
  for (let i = 0; i < mib; i++) writeSync(fd, block)
  closeSync(fd)
  const store = join(dir, 'image.cow')
  const s = await ImageStore.create(store, { lower, autoFlushMs: 0 })
  await s.write(5000, Buffer.from('upper bytes'))
  await s.close()
  return store
}

/** A tree store over `files` files of 64 KiB each, one changed. */
async function treeStore(dir: string, files: number): Promise<string> {
  const lower = join(dir, 'lower')
  mkdirSync(join(lower, 'd'), { recursive: true })
  for (let i = 0; i < files; i++) writeFileSync(join(lower, 'd', `f${i}`), Buffer.alloc(64 * 1024, (i % 250) + 1))
  const store = join(dir, 'tree.cow')
  const s = await TreeStore.create(store, { lower, autoFlushMs: 0 })
  const h = await s.open('/d/f0', 'r+')
  await h.write(0, Buffer.from('upper bytes'))
  await h.close()
  await s.close()
  return store
}

t.test('an aborted or failed image export leaves nothing at the output', async (t) => {
  const dir = t.testdir()
  const store = await imageStore(dir, 4)
  const s = await ImageStore.open(store, { readOnly: true })
  t.teardown(() => s.close())
  const out = join(dir, 'out')
  mkdirSync(out)

  const controller = new AbortController()
  const err = await exportImage(s, join(out, 'a.img'), { signal: controller.signal, onProgress: () => controller.abort('test') }).catch((e: unknown) => e)
  t.ok(isPagecowError(err, 'EINTR'), 'aborted after the first block: EINTR', { err })
  t.notOk(existsSync(join(out, 'a.img')), 'nothing at the output')
  t.same(temporaries(out), [], 'no temporary left')

  writeFileSync(join(out, 'old.img'), 'the file that was there\n')
  const again = new AbortController()
  await t.rejects(exportImage(s, join(out, 'old.img'), { overwrite: true, signal: again.signal, onProgress: () => again.abort() }), { code: 'EINTR' }, 'an aborted overwrite')
  t.equal(readFileSync(join(out, 'old.img'), 'utf8'), 'the file that was there\n', 'the file it would have replaced is untouched')
  t.same(temporaries(out), [], 'no temporary left')

  const done = await exportImage(s, join(out, 'a.img'))
  t.equal(done.size, 4 * MiB, 'the next export works')
  t.ok(readFileSync(join(out, 'a.img')).equals(await s.read(0, 4 * MiB)), 'and holds the merged image')
  await t.rejects(exportImage(s, join(out, 'a.img')), { code: 'EEXIST' }, 'an existing output without overwrite: EEXIST, before any work')
  t.same(temporaries(out), [], 'no temporary left')
  await t.rejects(exportImage(s, '/dev/null', { overwrite: true }), { code: 'EINVAL' }, 'a device as the output: EINVAL (an export would rename a file over it)')
})

t.test('an image export that runs out of space leaves nothing at the output (a small tmpfs)', (t) =>
  onSmallFs(t, 'tmpfs', 2, async (mnt, dir) => {
    const store = await imageStore(dir, 4)
    const s = await ImageStore.open(store, { readOnly: true })
    await t.rejects(exportImage(s, join(mnt, 'a.img')), { code: 'ENOSPC' }, 'ENOSPC')
    t.same(readdirSync(mnt), [], 'nothing at the output, no temporary')
    await s.close()
  }),
)

t.test('an aborted tree export leaves the output as it was', async (t) => {
  const dir = t.testdir()
  const store = await treeStore(dir, 20)
  const s = await TreeStore.open(store, { readOnly: true })
  t.teardown(() => s.close())
  for (const existed of [false, true]) {
    const out = join(dir, `out-${existed}`)
    if (existed) mkdirSync(out)
    const controller = new AbortController()
    let seen = 0
    const err = await exportTree(s, out, { signal: controller.signal, onProgress: () => ++seen === 5 && controller.abort() }).catch((e: unknown) => e)
    t.ok(isPagecowError(err, 'EINTR'), `${existed ? 'into an empty directory' : 'a new directory'}: EINTR`, { err })
    t.equal(existsSync(out), existed, existed ? 'the empty directory is still there' : 'no directory at the output')
    if (existed) t.same(readdirSync(out), [], 'and still empty')
    t.same(temporaries(dir), [], 'no temporary left')
    const result = await exportTree(s, out)
    t.equal(result.entries, 21, 'the next export works')
    t.equal(readFileSync(join(out, 'd', 'f0')).subarray(0, 11).toString(), 'upper bytes', 'with the merged tree')
  }
  await t.rejects(exportTree(s, join(dir, 'out-true')), { code: 'EEXIST' }, 'a non-empty output: EEXIST')
})

t.test('bad values for the signal option', async (t) => {
  const dir = t.testdir()
  const image = await ImageStore.open(await imageStore(dir, 1), { readOnly: true })
  t.teardown(() => image.close())
  for (const [name, value] of [
    ['a string', 'SIGINT'],
    ['an AbortController', new AbortController()],
    ['true', true],
  ] as const) {
    await t.rejects(exportImage(image, join(dir, 'x.img'), { signal: value as never }), { code: 'EINVAL' }, `exportImage: signal ${name}`)
    await t.rejects(exportImageToStream(image, process.stdout, { signal: value as never }), { code: 'EINVAL' }, `exportImageToStream: signal ${name}`)
  }
  await t.rejects(exportImageToStream(image, process.stdout, { overwrite: true } as never), { code: 'EINVAL' }, 'exportImageToStream: overwrite is not an option')
  await t.rejects(exportImage(image, join(dir, 'x.img'), { signl: new AbortController().signal } as never), { code: 'EINVAL' }, 'a misspelled signal')
  t.notOk(existsSync(join(dir, 'x.img')), 'nothing was written')
})

t.test('export STORE - writes the image to standard output', async (t) => {
  const dir = t.testdir()
  const store = await imageStore(dir, 3)
  const out = await runCli(['export', store, '-'])
  t.equal(out.code, 0, `exits 0${out.stderr ? `: ${out.stderr}` : ''}`)
  const file = await runCli(['export', store, join(dir, 'file.img')])
  t.equal(file.code, 0, 'a file export of the same store')
  t.ok(out.stdoutBytes.equals(readFileSync(join(dir, 'file.img'))), 'standard output holds exactly the bytes of the file export')
  t.equal(out.stdoutBytes.subarray(5000, 5011).toString(), 'upper bytes', 'the upper’s bytes included')
  const tree = await treeStore(join(dir), 2)
  for (const [name, args, code, message] of [
    ['a tree store', ['export', tree, '-'], 'EINVAL', /standard output\) is for image stores/],
    ['--force with -', ['export', store, '-', '--force'], 'EINVAL', /--force/],
    ['--json with -', ['export', store, '-', '--json'], 'EINVAL', /--json/],
  ] as const) {
    const r = await runCli([...args])
    t.equal(r.code, 1, `${name}: exits 1`)
    t.match(r.stderr, message, `${name}: says why`)
    t.match(r.stderr, new RegExp(`\\(${code}\\)`), `${name}: ${code}`)
    if ((args as readonly string[]).includes('--json')) {
      // --json errors are JSON on standard output, and nothing else is there.
      t.equal((JSON.parse(r.stdoutBytes.toString()) as { error: { code: string } }).error.code, code, `${name}: only the error, as JSON, on standard output`)
    } else {
      t.equal(r.stdoutBytes.length, 0, `${name}: nothing on standard output`)
    }
  }
  const tty = await runCli(['export', store, '-'], { stdoutIsTTY: true })
  t.match(tty.stderr, /terminal.*\(EINVAL\)/, 'standard output a terminal: refused (EINVAL)')
})

/**
 * Start `pagecow export STORE OUTPUT` as a real process, stop it (SIGSTOP) once its temporary
 * exists in `dir`, send `signal`, let it go on, and collect how it ended.
 */
async function interruptExport(t: Test, store: string, output: string, dir: string, signal: NodeJS.Signals) {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'lib', 'cli', 'bin.ts'), 'export', store, output], { cwd: ROOT, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s))
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('close', (code, sig) => resolve({ code, signal: sig })))
  const started = await waitFor(() => temporaries(dir).length > 0, 60_000)
  t.ok(started, 'the export started writing its temporary')
  child.kill('SIGSTOP')
  child.kill(signal)
  child.kill('SIGCONT')
  const end = await ended
  return { ...end, stderr }
}

t.test('SIGINT or SIGTERM stops a CLI export and leaves nothing; SIGKILL leaves no output', async (t) => {
  const dir = t.testdir()
  const store = await imageStore(dir, 128)
  const tree = await treeStore(dir, 600)
  for (const [signal, kind, from] of [
    ['SIGINT', 'image', store],
    ['SIGTERM', 'tree', tree],
  ] as const) {
    {
      const out = join(dir, `${kind}-${signal}`)
      const r = await interruptExport(t, from, out, dir, signal)
      t.equal(r.signal, null, `${kind}, ${signal}: the export exits by itself`)
      t.equal(r.code, 1, `${kind}, ${signal}: exit 1`)
      t.match(r.stderr, /interrupted \(SIG(INT|TERM)\).*\(EINTR\)/, `${kind}, ${signal}: says it was interrupted (EINTR)`, { stderr: r.stderr })
      t.notOk(existsSync(out), `${kind}, ${signal}: nothing at the output`)
      t.same(temporaries(dir), [], `${kind}, ${signal}: no temporary left`)
    }
  }
  for (const [kind, from] of [['image', store]] as const) {
    const out = join(dir, `${kind}-killed`)
    const r = await interruptExport(t, from, out, dir, 'SIGKILL')
    t.equal(r.signal, 'SIGKILL', `${kind}: killed`)
    t.notOk(existsSync(out), `${kind}, SIGKILL: no file at the output name`)
    const left = temporaries(dir)
    t.equal(left.length, 1, `${kind}, SIGKILL: its temporary is left (hidden)`)
    const again = await pagecow(['export', from, out])
    t.equal(again.code, 0, `${kind}: the next export is not confused by the leftover${again.stderr ? `: ${again.stderr}` : ''}`)
    t.ok(statSync(out), `${kind}: and its output is there`)
    t.same(temporaries(dir), left, `${kind}: only the killed run's temporary remains`)
  }
})
