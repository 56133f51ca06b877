// A full disk never kills a command (SPEC §8). On a loop-mounted ext4 of a few MiB (1 KiB blocks)
// and on a small tmpfs, after a write failed with ENOSPC, every command run as a real process
// (read, fsck, inspect, map, export, write, serve) either works or fails with a typed error, never
// by a signal, at several amounts of free space; and the store opens, reads what was flushed and
// is clean once space is freed. With 9–11 KiB free on the ext4 these commands died with SIGBUS:
// SQLite's shared-memory file was made with holes (one byte written per 4 KiB page) that could not
// be filled when SQLite stored into them. Then: a failed write is all-or-nothing per call, and the
// messages of a failed write and of a failed commit say what is true.
import { spawn } from 'node:child_process'
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { checkStore, ImageStore, isPagecowError, TreeStore } from '../lib/index.js'
import { childEnv } from './fixtures/child-env.js'
import { pagecow, ROOT, type Ran } from './fixtures/fuse-mounted.js'
import { Filler, onSmallFs, type SmallFsKind } from './fixtures/small-fs.js'

const KiB = 1024
const P = 4096
/** What the store holds before the disk fills: 64 pages of a known pattern. */
const FLUSHED = Buffer.alloc(64 * P, 0)
for (let i = 0; i < FLUSHED.length; i++) FLUSHED[i] = (i * 7 + (i >> 12)) & 0xff

/** A command's outcome as a user judges it: it worked, or said why with a typed code. */
function judge(t: Test, what: string, r: Ran): void {
  t.equal(r.signal, null, `${what}: not killed by a signal`, { stderr: r.stderr })
  if (r.code === 0) t.pass(`${what}: works`)
  else t.match(r.stderr, /^pagecow: .*\((ENOSPC|EIO|EBUSY)\)\n$/, `${what}: exit ${r.code} with a typed error`)
}

/** `pagecow serve STORE --port 0 --json` until it prints its URI (or exits), then SIGTERM. */
function serveBriefly(store: string): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'lib', 'cli', 'bin.ts'), 'serve', store, '--port', '0', '--json'], { cwd: ROOT, env: childEnv() })
    let stdout = ''
    let stderr = ''
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s
      if (stdout.includes('\n')) child.kill('SIGTERM')
    })
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s))
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })
}

t.test('no command dies by a signal on a full disk; the store opens again once space is freed', async (t) => {
  // 10 KiB free on the ext4: SQLite's one-byte-per-page writes fit, filling its holes does not
  // (SIGBUS before the fix). Nothing free on the tmpfs: opens that need space fail with ENOSPC.
  for (const [kind, levels] of [
    ['ext4', [10 * KiB]],
    ['tmpfs', [0]],
  ] as Array<[SmallFsKind, number[]]>) {
    await t.test(kind, (t) =>
      onSmallFs(t, kind, kind === 'ext4' ? 4 : 2, async (mnt, dir) => {
        writeFileSync(join(dir, 'lower.img'), Buffer.alloc(64 * 1024 * 1024 / 16, 0x4c))
        const store = join(mnt, 'store')
        const s = await ImageStore.create(store, { lower: join(dir, 'lower.img'), autoFlushMs: 0 })
        await s.write(0, FLUSHED)
        await s.close()
        writeFileSync(join(dir, 'more.bin'), Buffer.alloc(128 * KiB, 0x33))
        const filler = new Filler(mnt)
        filler.fill()
        const failed = await pagecow(['write', store, '--offset', String(100 * P), '--input', join(dir, 'more.bin')])
        t.equal(failed.code, 1, 'a write of new pages on the full disk fails')
        t.match(failed.stderr, /\(ENOSPC\)\n$/, 'with ENOSPC')
        let outputs = 0
        for (const free of levels) {
          filler.leave(free)
          // The commands that only look run side by side, as they may in real use (and in half
          // the time); whichever comes first sets the store's shared memory up for the others.
          const looking = [
            ['read', ['read', store, '--offset', '0', '--length', String(P), '--output', '/dev/null']],
            ['fsck', ['fsck', store]],
            ['inspect', ['inspect', store]],
            ['map', ['map', store, '--output=json']],
            ['export', ['export', store, join(dir, `out-${++outputs}.img`)]],
          ] as const
          const ran = await Promise.all(looking.map(([, args]) => pagecow([...args])))
          looking.forEach(([name], i) => judge(t, `${kind}, ${free / KiB} KiB free: pagecow ${name}`, ran[i]!))
          // A server opens the store for writing (the write above, and the one after, do too).
          judge(t, `${kind}, ${free / KiB} KiB free: pagecow serve`, await serveBriefly(store))
        }
        filler.remove()
        const [read, fsck] = await Promise.all([
          pagecow(['read', store, '--offset', '0', '--length', String(FLUSHED.length), '--output', join(dir, 'back.bin')]),
          pagecow(['fsck', store]),
        ])
        t.equal(read.code, 0, `space freed: pagecow read works${read.stderr ? `: ${read.stderr}` : ''}`)
        t.equal(fsck.code, 0, `space freed: fsck is clean${fsck.stderr ? `: ${fsck.stderr}` : ''}`)
        t.ok(readFileSync(join(dir, 'back.bin')).equals(FLUSHED), 'what was flushed reads back')
        const write = await pagecow(['write', store, '--offset', String(100 * P), '--input', join(dir, 'more.bin')])
        t.equal(write.code, 0, `space freed: the write that failed works${write.stderr ? `: ${write.stderr}` : ''}`)
      }),
    )
  }
})

t.test('a tree store on a nearly full ext4: no signal, typed errors, opens again', (t) =>
  onSmallFs(t, 'ext4', 4, async (mnt, dir) => {
    mkdirSync(join(dir, 'lower'))
    writeFileSync(join(dir, 'lower', 'f'), FLUSHED)
    const store = join(mnt, 'store')
    const s = await TreeStore.create(store, { lower: join(dir, 'lower'), autoFlushMs: 0 })
    const h = await s.open('/f', 'r+')
    await h.write(0, Buffer.alloc(P, 0x55))
    await h.close()
    await s.close()
    const filler = new Filler(mnt)
    filler.leave(10 * KiB)
    const looking = [
      ['read', ['read', store, '/f', '--length', String(P)]],
      ['fsck', ['fsck', store]],
      ['ls', ['ls', store, '/']],
      ['inspect', ['inspect', store, '/f']],
    ] as const
    const ran = await Promise.all(looking.map(([, args]) => pagecow([...args])))
    looking.forEach(([name], i) => judge(t, `10 KiB free: pagecow ${name}`, ran[i]!))
    filler.remove()
    const read = await pagecow(['read', store, '/f', '--length', String(P)])
    t.equal(read.code, 0, 'space freed: read works')
    t.equal(read.stdout, 'U'.repeat(P), 'what was flushed reads back')
    t.same((await checkStore(store)).problems, [], 'fsck is clean')
  }),
)

/** The page states and bytes a failed write must leave as they were. */
async function snapshotImage(s: ImageStore) {
  return { size: s.size, pages: s.info().pages, bytes: await s.read(0, s.size) }
}

t.test('a write that fails with ENOSPC changes nothing, per call (image and tree, ext4 and tmpfs)', async (t) => {
  for (const kind of ['ext4', 'tmpfs'] as const) {
    await t.test(kind, (t) =>
      onSmallFs(t, kind, 4, async (mnt, dir) => {
        writeFileSync(join(dir, 'lower.img'), Buffer.alloc(16 * P, 0x4c))
        mkdirSync(join(dir, 'lower'))
        writeFileSync(join(dir, 'lower', 'f'), Buffer.alloc(16 * P, 0x4c))
        const image = await ImageStore.create(join(mnt, 'image'), { lower: join(dir, 'lower.img'), autoFlushMs: 0 })
        const tree = await TreeStore.create(join(mnt, 'tree'), { lower: join(dir, 'lower'), autoFlushMs: 0 })
        const file = await tree.open('/f', 'r+')
        // Pages 0–3 and 6 DATA in both; the rest LOWER; then no block is left.
        for (const [at, n] of [[0, 4], [6, 1]]) {
          await image.write(at! * P, Buffer.alloc(n! * P, 0x41))
          await file.write(at! * P, Buffer.alloc(n! * P, 0x41))
        }
        await image.flush()
        await tree.flush()
        const filler = new Filler(mnt)
        filler.fill()
        const cases: Array<[string, number, number]> = [
          ['a DATA page and a LOWER page, aligned', 3 * P, 2 * P],
          ['the end of a DATA page and the start of a LOWER page', 4 * P - 100, 200],
          ['part of a DATA page and a whole LOWER page', 3 * P + 100, 2 * P - 100],
          ['a DATA page and three LOWER pages', 3 * P + 10, 4 * P],
          ['a LOWER page and then a DATA page', 5 * P + 7, P],
          ['past the end of the file, from a DATA page', 3 * P, 20 * P],
        ]
        for (const [name, offset, length] of cases) {
          const data = Buffer.alloc(length, 0x5a)
          const before = await snapshotImage(image)
          const imageError = await image.write(offset, data).then(() => undefined, (e: unknown) => e)
          const after = await snapshotImage(image)
          if (imageError === undefined) t.fail(`image, ${name}: succeeded on a full disk (nothing to judge)`)
          else {
            t.ok(isPagecowError(imageError, 'ENOSPC'), `image, ${name}: ENOSPC`, { imageError })
            t.same(after.pages, before.pages, `image, ${name}: the page map is unchanged`)
            t.equal(after.size, before.size, `image, ${name}: the size is unchanged`)
            t.ok(after.bytes.equals(before.bytes), `image, ${name}: every byte reads as before`)
            t.match((imageError as Error).message, /this write changed nothing/, `image, ${name}: the message says nothing changed`)
          }
          const treeBefore = { size: (await file.stat()).size, bytes: await file.read(0, 64 * P) }
          const treeError = await file.write(offset, data).then(() => undefined, (e: unknown) => e)
          t.ok(isPagecowError(treeError, 'ENOSPC'), `tree, ${name}: ENOSPC`, { treeError })
          t.equal((await file.stat()).size, treeBefore.size, `tree, ${name}: the size is unchanged`)
          t.ok((await file.read(0, 64 * P)).equals(treeBefore.bytes), `tree, ${name}: every byte reads as before`)
        }
        filler.remove()
        await file.close()
        await image.close()
        await tree.close()
        t.same((await checkStore(join(mnt, 'image'))).problems, [], 'image: fsck is clean')
        t.same((await checkStore(join(mnt, 'tree'))).problems, [], 'tree: fsck is clean')
      }),
    )
  }
})

t.test('a commit that fails on a full disk says nothing was committed, not that nothing changed', (t) =>
  onSmallFs(t, 'tmpfs', 2, async (mnt, dir) => {
    writeFileSync(join(dir, 'lower.img'), Buffer.alloc(64 * P, 0x4c))
    const store = join(mnt, 'store')
    const s = await ImageStore.create(store, { lower: join(dir, 'lower.img'), autoFlushMs: 0 })
    await s.write(0, FLUSHED)
    // Keep the store open (its log and index stay), fill the disk, then overwrite DATA pages:
    // that needs no new block, but committing it needs room in the log.
    await s.flush()
    const filler = new Filler(mnt)
    filler.fill()
    await s.write(0, Buffer.alloc(16 * P, 0x77))
    const err = await s.flush().then(() => undefined, (e: unknown) => e)
    if (err === undefined) {
      t.pass('the commit found room in the log (nothing to judge on this kernel)')
    } else {
      t.ok(isPagecowError(err, 'ENOSPC'), 'the commit fails with ENOSPC', { err })
      t.notMatch((err as Error).message, /nothing was changed/, 'it does not claim that nothing changed')
      t.match((err as Error).message, /not committed/, 'it says the writes are not committed')
      t.equal(s.info().dirty, true, 'the writes wait for the next flush')
    }
    filler.remove()
    await s.close()
    t.same((await checkStore(store)).problems, [], 'fsck is clean once space is back')
  }),
)
