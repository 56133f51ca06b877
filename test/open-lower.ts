// How a tree store chooses, records and reopens its lower (lib/tree/open-lower.ts): a squashfs
// image is told by its magic (or insisted on with `lowerFormat`), fingerprinted like a raw lower
// and refused with ESTALE at open once it changed, saying what changed; a damaged image is
// ECORRUPT, at creation or when a damaged block is read, never a crash, a hang or wrong bytes.
// Bad inputs of the new option are refused, and nothing is created by a refused create.
import t from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import * as nodeFs from 'node:fs'
import { join } from 'node:path'
import { lutimensSync } from '../lib/fs.js'
import { checkStore, createStore, isPagecowError, openStore, SquashfsImage, TreeStore } from '../lib/index.js'
import { readStoreMeta } from '../lib/store/meta.js'
import { openDatabase } from '../lib/store/database.js'
import { cannotRun, cannotRunPart } from './fixtures/cannot-run.js'
import { Random, testSeeds } from './fixtures/random.js'
import { makeFuzzTree, mksquashfs, mksquashfsMissing } from './fixtures/squashfs-tree.js'
import type { TapTest } from './fixtures/tap-test.js'
import { buildLower } from './fixtures/tree-lower.js'

/** Runs of the store-level fuzz in `npm test`; PAGECOW_FUZZ_RUNS raises it. */
const FUZZ_RUNS = Number(process.env.PAGECOW_FUZZ_RUNS ?? 100)

/** Set `path`'s times back to `st`'s exactly (nanoseconds). */
function restoreTimes(path: string, st: nodeFs.BigIntStats): void {
  const ts = (ns: bigint) => ({ sec: Number(ns / 1_000_000_000n), nsec: Number(ns % 1_000_000_000n) })
  lutimensSync(path, ts(st.atimeNs), ts(st.mtimeNs))
}

/** Write `bytes` at `offset` of `path`, in place. */
function poke(path: string, offset: number, bytes: Buffer): void {
  const fd = nodeFs.openSync(path, 'r+')
  try {
    nodeFs.writeSync(fd, bytes, 0, bytes.length, offset)
  } finally {
    nodeFs.closeSync(fd)
  }
}

async function readAll(store: TreeStore, path: string): Promise<Buffer> {
  const h = await store.open(path)
  try {
    return await h.read(0, (await h.stat()).size)
  } finally {
    await h.close()
  }
}

const missing = mksquashfsMissing()
if (missing) {
  cannotRun(t, missing)
} else {
  const setup = (t: TapTest) => {
    const dir = t.testdir()
    const src = join(dir, 'src')
    buildLower(src)
    const image = join(dir, 'root.sqfs')
    mksquashfs(src, image, [])
    return { dir, src, image }
  }

  t.test('the store records a squashfs lower: format, root inode, fingerprint; and opens it again', async (t) => {
    const { dir, image } = setup(t)
    const storeDir = join(dir, 'store')
    const store = await TreeStore.create(storeDir, { lower: image })
    await store.close()
    const db = openDatabase(join(storeDir, 'pagecow.db'), { readOnly: true })
    const meta = readStoreMeta(db, storeDir)
    db.close()
    const img = SquashfsImage.open(image)
    const rootIno = img.root.inodeNumber
    img.close()
    const st = nodeFs.statSync(image)
    t.match(meta, { kind: 'tree', lowers: [{ format: 'squashfs', path: image, rootIno, fingerprint: { size: st.size, mtimeMs: st.mtimeMs, sample: /^[0-9a-f]{64}$/ } }] })
    const again = await openStore(storeDir)
    t.equal(again.kind, 'tree')
    t.same((again as TreeStore).info().lower, { path: image, format: 'squashfs' })
    await again.close()
    // A directory store's record names its format too; records without one are directories.
    const dirStore = await TreeStore.create(join(dir, 'dir-store'), { lower: join(dir, 'src') })
    t.same(dirStore.info().lower, { path: join(dir, 'src'), format: 'directory' })
    await dirStore.close()
  })

  const changes: Array<[string, (image: string, src: string) => void, RegExp, string]> = [
    ['touched', (image) => nodeFs.utimesSync(image, new Date(), new Date(2030, 0, 1)), /mtime \S+ → 2030-/, 'ESTALE'],
    ['grown', (image) => nodeFs.appendFileSync(image, Buffer.alloc(4096)), /size \d+ → \d+ bytes/, 'ESTALE'],
    [
      'a byte flipped (size and mtime kept)',
      (image) => {
        const st = nodeFs.statSync(image, { bigint: true })
        const b = nodeFs.readFileSync(image).subarray(100, 101)
        poke(image, 100, Buffer.from([b[0]! ^ 0x01]))
        restoreTimes(image, st)
      },
      /sampled bytes differ/,
      'ESTALE',
    ],
    [
      'rebuilt from a changed tree',
      (image, src) => {
        nodeFs.writeFileSync(join(src, 'etc/hosts'), '10.0.0.1 other\n')
        mksquashfs(src, image, [])
      },
      /changed since the store was created/,
      'ESTALE',
    ],
    ['removed', (image) => nodeFs.rmSync(image), /does not exist/, 'ENOENT'],
  ]
  for (const [what, change, says, code] of changes) {
    t.test(`an image ${what} after the store was made: ${code} at open, fsck says so, nothing lost`, async (t) => {
      const { dir, src, image } = setup(t)
      const storeDir = join(dir, 'store')
      const store = await TreeStore.create(storeDir, { lower: image })
      const h = await store.open('/etc/passwd', 'r+')
      await h.write(0, Buffer.from('ROOT'))
      await h.close()
      await store.close()
      const saved = nodeFs.readFileSync(image)
      const st = nodeFs.statSync(image, { bigint: true })
      change(image, src)
      for (const [how, open] of [
        ['TreeStore.open', () => TreeStore.open(storeDir)],
        ['read-only', () => TreeStore.open(storeDir, { readOnly: true })],
        ['openStore', () => openStore(storeDir)],
      ] as const) {
        await t.rejects(open(), { code, message: says }, `${how}: ${code}, saying what changed`)
      }
      const report = await checkStore(storeDir)
      t.notOk(report.clean, 'fsck: not clean')
      t.match(report.problems, [{ code, message: says }], 'fsck names the change')
      nodeFs.writeFileSync(image, saved)
      restoreTimes(image, st)
      const back = await TreeStore.open(storeDir)
      t.equal((await readAll(back, '/etc/passwd')).subarray(0, 4).toString(), 'ROOT', 'the image restored: the store opens, its writes intact')
      await back.close()
    })
  }

  t.test('a squashfs partition (a block device): its fingerprint covers the image, so a reflash is ESTALE', async (t) => {
    if (process.getuid?.() !== 0) return cannotRunPart(t, 'attaching a loop device needs root')
    const { dir, src, image } = setup(t)
    const attach = (file: string) => execFileSync('losetup', ['--find', '--show', '--read-only', file], { encoding: 'utf8' }).trim()
    const attached: string[] = []
    t.teardown(() => {
      for (const dev of attached) spawnSync('losetup', ['-d', dev])
    })
    // The partition: a copy of the image padded to 1 MiB, attached (the copy is "the flash").
    const flash = join(dir, 'flash.img')
    nodeFs.copyFileSync(image, flash)
    nodeFs.truncateSync(flash, 1 << 20)
    const dev = attach(flash)
    attached.push(dev)
    const storeDir = join(dir, 'store')
    const store = await createStore(storeDir, { lower: dev })
    t.equal(store.kind, 'tree', 'told by its magic on the device')
    t.equal((await readAll(store as TreeStore, '/etc/hosts')).toString(), '127.0.0.1 localhost\n')
    await store.close()
    const db = openDatabase(join(storeDir, 'pagecow.db'), { readOnly: true })
    const meta = readStoreMeta(db, storeDir)
    db.close()
    const used = Number(nodeFs.readFileSync(image).readBigUInt64LE(40))
    t.match(meta.kind === 'tree' && meta.lowers[0], { format: 'squashfs', path: dev, fingerprint: { size: used, mtimeMs: 0 } }, "the image's own length stands for the device's size")
    // The same partition reflashed with another image, written over the old one in place.
    nodeFs.writeFileSync(join(src, 'etc/hosts'), '10.0.0.1 new\n')
    const other = join(dir, 'other.sqfs')
    mksquashfs(src, other, [])
    const fd = nodeFs.openSync(flash, 'r+')
    nodeFs.writeSync(fd, nodeFs.readFileSync(other), 0, nodeFs.statSync(other).size, 0)
    nodeFs.fsyncSync(fd)
    nodeFs.closeSync(fd)
    await t.rejects(TreeStore.open(storeDir), { code: 'ESTALE', message: /sampled bytes differ/ }, 'another image on the same device: ESTALE')
  })

  t.test('a damaged image is ECORRUPT at create, naming what is wrong; nothing is created', async (t) => {
    const { dir, image } = setup(t)
    const good = nodeFs.readFileSync(image)
    const inodeTable = Number(good.readBigUInt64LE(64))
    const damages: Array<[string, (b: Buffer) => Buffer, RegExp]> = [
      ['truncated by one byte of what is used', (b) => b.subarray(0, Number(b.readBigUInt64LE(40)) - 1), /truncated/],
      ['only the magic', (b) => b.subarray(0, 4), /truncated/],
      ['a block size that is not 2^block_log', (b) => (b.writeUInt16LE(12, 22), b), /block/],
      ['a root inode reference past the inode table', (b) => (b.writeBigUInt64LE(0xffff0000n, 32), b), /./],
      ['the inode table zeroed', (b) => (b.fill(0, inodeTable, inodeTable + 64), b), /./],
      ['the inode table garbage', (b) => (b.fill(0xa5, inodeTable, inodeTable + 64), b), /./],
      ['a version 3 image', (b) => (b.writeUInt16LE(3, 28), b), /version|major/i],
    ]
    for (const [what, damage, says] of damages) {
      const bad = join(dir, 'bad.sqfs')
      nodeFs.writeFileSync(bad, damage(Buffer.from(good)))
      const storeDir = join(dir, 'store-bad')
      await t.rejects(createStore(storeDir, { lower: bad }), { code: 'ECORRUPT', message: says }, `${what}: ECORRUPT`)
      t.notOk(nodeFs.existsSync(storeDir), `${what}: no store directory made`)
      nodeFs.rmSync(storeDir, { recursive: true, force: true })
    }
  })

  t.test('an image damaged under an open store: ECORRUPT where it is read, the rest served, nothing lost', async (t) => {
    const dir = t.testdir()
    const src = join(dir, 'src')
    nodeFs.mkdirSync(src)
    const text = Buffer.from(Array.from({ length: 300_000 }, (_, i) => `line ${i} ${(i * 7919) % 100_003}\n`).join(''))
    nodeFs.writeFileSync(join(src, 'big'), text)
    nodeFs.writeFileSync(join(src, 'other'), 'other file\n')
    const image = join(dir, 'image.sqfs')
    mksquashfs(src, image, ['-no-fragments'])
    const store = await TreeStore.create(join(dir, 'store'), { lower: image, autoFlushMs: 0 })
    t.teardown(() => store.close())
    // Bit rot in `big`'s first compressed block (data blocks come first, after the superblock),
    // size and mtime kept and outside the fingerprint's samples: only reading the block finds it.
    const st = nodeFs.statSync(image, { bigint: true })
    poke(image, 10_000, Buffer.alloc(64, 0xa5))
    restoreTimes(image, st)
    const h = await store.open('/big', 'r+')
    await t.rejects(h.read(0, 4096), { code: 'ECORRUPT', message: /squashfs image .*data block 0/ }, 'reading the damaged block: ECORRUPT naming it')
    t.ok((await h.read(1 << 20, 4096)).equals(text.subarray(1 << 20, (1 << 20) + 4096)), 'the blocks around it read as before')
    await t.rejects(h.write(10, Buffer.from('x')), { code: 'ECORRUPT' }, 'a write that must copy up the damaged block fails')
    await h.close()
    t.same([...store.changes()], [], 'and records nothing')
    t.equal((await readAll(store, '/other')).toString(), 'other file\n', 'another file is served')
    await store.close()
  })

  t.test('bad inputs: lowerFormat and lowers of the wrong kind; nothing is created', async (t) => {
    const { dir, src, image } = setup(t)
    const raw = join(dir, 'raw.img')
    nodeFs.writeFileSync(raw, Buffer.alloc(8192, 1))
    const fifo = join(dir, 'fifo')
    execFileSync('mkfifo', [fifo])
    const cases: Array<[string, () => Promise<unknown>, string]> = [
      ['lowerFormat not a format', () => createStore(join(dir, 'new'), { lower: image, lowerFormat: 'squash' as never }), 'EINVAL'],
      ['lowerFormat not a string', () => createStore(join(dir, 'new'), { lower: image, lowerFormat: 1 as never }), 'EINVAL'],
      ['lowerFormat misspelled', () => createStore(join(dir, 'new'), { lower: image, lowerformat: 'squashfs' } as never), 'EINVAL'],
      ['TreeStore.create: raw is no tree lower', () => TreeStore.create(join(dir, 'new'), { lower: image, lowerFormat: 'raw' as never }), 'EINVAL'],
      ['squashfs asked, a directory given', () => createStore(join(dir, 'new'), { lower: src, lowerFormat: 'squashfs' }), 'EINVAL'],
      ['squashfs asked, a raw image given', () => createStore(join(dir, 'new'), { lower: raw, lowerFormat: 'squashfs' }), 'EINVAL'],
      ['squashfs asked, a FIFO given', () => createStore(join(dir, 'new'), { lower: fifo, lowerFormat: 'squashfs' }), 'EINVAL'],
      ['directory asked, an image given', () => createStore(join(dir, 'new'), { lower: image, lowerFormat: 'directory' }), 'ENOTDIR'],
      ['raw asked, a directory given', () => createStore(join(dir, 'new'), { lower: src, lowerFormat: 'raw' }), 'EINVAL'],
      ['TreeStore.create over a raw image', () => TreeStore.create(join(dir, 'new'), { lower: raw }), 'ENOTDIR'],
      ['a missing lower', () => createStore(join(dir, 'new'), { lower: join(dir, 'none.sqfs') }), 'ENOENT'],
      ['a missing lower, format given', () => createStore(join(dir, 'new'), { lower: join(dir, 'none.sqfs'), lowerFormat: 'squashfs' }), 'ENOENT'],
    ]
    for (const [what, call, code] of cases) {
      await t.rejects(call(), { code }, what)
      t.notOk(nodeFs.existsSync(join(dir, 'new')), `${what}: nothing created`)
    }
    // What the option is for: a squashfs image as a raw image (an image store over its bytes).
    const asRaw = await createStore(join(dir, 'raw-store'), { lower: image, lowerFormat: 'raw' })
    t.equal(asRaw.kind, 'image', "lowerFormat 'raw': an image store over the image's bytes")
    await asRaw.close()
    const tree = await createStore(join(dir, 'tree-store'), { lower: image, lowerFormat: 'squashfs' })
    t.equal(tree.kind, 'tree', "lowerFormat 'squashfs': a tree store")
    await tree.close()
  })

  t.test('random damage', async (t) => {
    t.comment('every store-level failure over a randomly damaged image is a typed error (ECORRUPT mostly), never a crash or a hang')
    const dir = t.testdir()
    const src = join(dir, 'src')
    makeFuzzTree(src)
    const image = join(dir, 'image.sqfs')
    mksquashfs(src, image, ['-b', '4096'])
    const original = nodeFs.readFileSync(image)
    const tables = Number(original.readBigUInt64LE(64))
    // The stores go to tmpfs where there is one: what is tested is damage, not durability, and
    // each store's fsyncs would cost more than its walk.
    const scratch = nodeFs.existsSync('/dev/shm') ? nodeFs.mkdtempSync('/dev/shm/pagecow-test-') : dir
    t.teardown(() => nodeFs.rmSync(scratch, { recursive: true, force: true }))
    const codes: Record<string, number> = {}
    const bugs: string[] = []
    let slowest = 0
    for (const seed of testSeeds([7])) {
      const rand = new Random(seed)
      for (let run = 0; run < FUZZ_RUNS; run++) {
        const bad = Buffer.from(original)
        for (let i = rand.int(1, 6); i > 0; i--) bad[rand.int(rand.chance(0.5) ? 0 : tables, bad.length)] = rand.int(0, 256)
        const path = join(dir, `run.sqfs`)
        nodeFs.writeFileSync(path, bad)
        const storeDir = join(scratch, `store-${seed}-${run}`)
        const start = performance.now()
        let code = 'ok'
        try {
          const store = await TreeStore.create(storeDir, { lower: path, lowerFormat: 'squashfs', autoFlushMs: 0 })
          try {
            await walkAndWrite(store)
          } finally {
            await store.close()
          }
        } catch (err) {
          if (isPagecowError(err)) code = err.code
          else bugs.push(`seed ${seed} run ${run}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
        }
        slowest = Math.max(slowest, performance.now() - start)
        codes[code] = (codes[code] ?? 0) + 1
        nodeFs.rmSync(storeDir, { recursive: true, force: true })
      }
    }
    t.same(bugs, [], 'no failure that is not a PagecowError')
    const allowed = new Set(['ok', 'ECORRUPT', 'ENOTSUP', 'ENAMETOOLONG'])
    t.same(Object.keys(codes).filter((c) => !allowed.has(c)), [], `outcomes: ${JSON.stringify(codes)}`)
    t.ok(slowest < 10_000, `the slowest run took ${Math.round(slowest)} ms`)
  })
}

/** Everything a user does first: walk the whole tree, read every file, write into each. */
async function walkAndWrite(store: TreeStore): Promise<void> {
  let seen = 0
  const visit = async (path: string): Promise<void> => {
    if (++seen > 2000) return
    const st = await store.stat(path)
    await store.listxattr(path)
    if (st.type === 'symlink') await store.readlink(path)
    if (st.type === 'file') {
      await readAll(store, path)
      const h = await store.open(path, 'r+')
      await h.write(0, Buffer.from('x'))
      await h.close()
    }
    if (st.type === 'directory') for (const e of await store.readdir(path)) await visit(`${path === '/' ? '' : path}/${e.name}`)
  }
  await visit('/')
  for (const _ of store.changes());
}
