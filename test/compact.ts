// Compaction (issue 13, "beyond the anchors"): DATA pages that read the same as the lower become
// LOWER again and all-zero ones ZERO, their space given back, and nothing reads differently —
// checked against a model of the bytes at several page sizes, with reads racing the compaction,
// through a kill at random points, on a tree store, and through the CLI.
import * as nodeFs from 'node:fs'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { checkStore, ImageStore, TreeStore } from '../lib/index.js'
import { runCli } from './fixtures/cli-io.js'
import { runThenKill } from './fixtures/kill-child.js'
import { blockSize, makeLower } from './fixtures/lower.js'
import { Random, testSeeds } from './fixtures/random.js'

const CHILD = fileURLToPath(new URL('./fixtures/compact-child.ts', import.meta.url))

/**
 * A store over a random lower, written so that some pages are copies of the lower (whole pages
 * rewritten with the lower's bytes, and partial edits put back), some all zeros, some real
 * changes. Returns the store (open) and the model of its bytes.
 */
async function scrambled(dir: string, pageSize: number, seed: number, pages = 96) {
  const random = new Random(seed)
  const size = pages * pageSize + 1000 // a short last page
  const lower = makeLower(`${dir}/lower.img`, size, random, 0.6)
  const store = await ImageStore.create(`${dir}/store`, { lower: lower.path, pageSize, autoFlushMs: 0 })
  const model = Buffer.from(lower.bytes)
  const write = async (at: number, data: Buffer) => {
    await store.write(at, data)
    data.copy(model, at)
  }
  await store.mark('before')
  for (let i = 0; i < pages; i++) {
    const at = random.int(0, size - 1)
    const length = Math.min(size - at, random.int(1, 3 * pageSize))
    switch (random.int(0, 4)) {
      case 0: // the lower's own bytes: reads the same, yet copies up
        await write(at, Buffer.from(lower.bytes.subarray(at, at + length)))
        break
      case 1: // zeros
        await write(at, Buffer.alloc(length))
        break
      case 2: {
        // an edit, then put back
        await write(at, Buffer.alloc(length, 0x5a))
        await write(at, Buffer.from(lower.bytes.subarray(at, at + length)))
        break
      }
      default:
        await write(at, Buffer.alloc(length, random.int(1, 255)))
    }
  }
  await store.flush()
  return { store, model, lower }
}

/** What compaction should leave on page `page`: its state from the bytes alone. */
function expectedState(page: number, pageSize: number, model: Buffer, lowerBytes: Buffer, wasData: boolean): string {
  const a = page * pageSize
  const b = Math.min(model.length, a + pageSize)
  if (!wasData) return 'unchanged'
  if (model.subarray(a, b).equals(lowerBytes.subarray(a, b))) return 'lower'
  if (model.subarray(a, b).every((x) => x === 0)) return 'zero'
  return 'data'
}

/** The byte ranges extents cover, merged (their states aside: a changed page is said as it reads now). */
function covered(extents: Iterable<{ start: number; length: number }>): Array<[number, number]> {
  const out: Array<[number, number]> = []
  for (const e of extents) {
    const last = out.at(-1)
    if (last && last[1] === e.start) last[1] += e.length
    else out.push([e.start, e.start + e.length])
  }
  return out
}

/** The state of each page of the image, from its extents. */
function pageStates(store: ImageStore, pageSize: number): string[] {
  const states: string[] = []
  for (const e of store.extents()) {
    for (let at = e.start; at < e.start + e.length; at += pageSize) {
      const page = Math.floor(at / pageSize)
      // An extent boundary inside a page (the lower's holes) splits nothing of the page map.
      if (states[page] === undefined || states[page] === 'hole' || states[page] === 'lower') states[page] = e.state === 'hole' ? 'lower' : e.state
    }
  }
  return states
}

for (const pageSize of [512, 4096, 65536]) {
  for (const seed of testSeeds([11, 12])) {
    t.test(`image, ${pageSize}-byte pages, seed ${seed}: nothing reads differently, pages equal to the lower or zero give their space back`, async (t) => {
      const dir = t.testdir()
      const { store, model, lower } = await scrambled(dir, pageSize, seed)
      const before = pageStates(store, pageSize)
      const changedBefore = covered(store.changedExtents('before'))
      const usedBefore = store.info().upper.allocatedBytes

      // Reads in the thread pool race the compaction: none may see a page between its states.
      let racing = true
      let readsSeen = 0
      let readsWrong = 0
      const reader = (async () => {
        const random = new Random(seed + 100)
        while (racing) {
          const at = random.int(0, model.length - 1)
          const buf = Buffer.alloc(Math.min(model.length - at, random.int(1, 4 * pageSize)))
          await store.readInto(buf, at, { threadPool: true })
          readsSeen++
          if (!buf.equals(model.subarray(at, at + buf.length))) readsWrong++
          await new Promise((resolve) => setImmediate(resolve)) // a read of zero pages never leaves the microtasks
        }
      })()
      const result = await store.compact()
      racing = false
      await reader

      t.equal(readsWrong, 0, `${readsSeen} reads racing the compaction all read the model`)
      t.ok((await store.read(0, store.size)).equals(model), 'the image reads the same after compaction')
      const after = pageStates(store, pageSize)
      let wrong = 0
      let toLower = 0
      let toZero = 0
      let data = 0
      for (let page = 0; page < before.length; page++) {
        const want = expectedState(page, pageSize, model, lower.bytes, before[page] === 'data')
        const got = after[page]
        if (want === 'unchanged' ? got !== before[page] : got !== want) wrong++
        if (want === 'lower') toLower++
        if (want === 'zero') toZero++
        if (before[page] === 'data') data++
      }
      t.equal(wrong, 0, 'every DATA page equal to the lower is LOWER, every all-zero one ZERO, every other as it was')
      t.same(result, { dataPages: data, toLower, toZero, bytesFreed: (toLower + toZero) * pageSize }, 'the result counts them')
      t.ok(toLower > 0 && toZero > 0, 'the workload made pages of both kinds', { toLower, toZero })
      t.same(covered(store.changedExtents('before')), changedBefore, 'the same bytes are changed since a mark: compaction records nothing')
      const used = store.info().upper.allocatedBytes
      if (pageSize >= blockSize(`${dir}/store/upper.img`)) {
        // A block or two of slack: the file system's extent tree grows as holes split extents.
        t.ok(used <= usedBefore - (toLower + toZero) * pageSize + 2 * blockSize(`${dir}/store/upper.img`), `the upper gave their space back (${usedBefore} → ${used} bytes, ${toLower + toZero} pages settled)`)
      } else {
        t.ok(used <= usedBefore, `the upper gave back what whole file-system blocks it could (${usedBefore} → ${used} bytes; pages smaller than a block)`)
      }
      t.same(await store.compact(), { dataPages: data - toLower - toZero, toLower: 0, toZero: 0, bytesFreed: 0 }, 'a second compaction finds nothing')
      await store.write(3 * pageSize, Buffer.alloc(10, 1))
      model.fill(1, 3 * pageSize, 3 * pageSize + 10)
      await store.close()

      const again = await ImageStore.open(`${dir}/store`, { readOnly: true })
      t.ok((await again.read(0, again.size)).equals(model), 'and after a reopen, with a write after the compaction')
      await again.close()
      const report = await checkStore(`${dir}/store`)
      t.ok(report.clean, 'fsck: clean', { problems: report.problems })
    })
  }
}

t.test('a page that does not match its checksum is never compared, never settled', async (t) => {
  const dir = t.testdir()
  const P = 4096
  const { store, lower } = await scrambled(dir, P, 5, 16)
  await store.write(0, Buffer.from(lower.bytes.subarray(0, P))) // equal to the lower
  await store.close()
  // Damage the page in the upper behind the store's back.
  const fd = nodeFs.openSync(`${dir}/store/upper.img`, 'r+')
  nodeFs.writeSync(fd, Buffer.from('damage'), 0, 6, 100)
  nodeFs.closeSync(fd)
  const store2 = await ImageStore.open(`${dir}/store`, { autoFlushMs: 0 })
  await t.rejects(store2.compact(), { code: 'ECORRUPT' }, 'compaction stops with ECORRUPT')
  t.equal([...store2.extents(0, P)][0]?.state, 'data', 'the damaged page is still DATA (fsck names it; nothing hides it)')
  await store2.close()
})

t.test('tree: a file edited and put back, and a file of zeros, keep no copy', async (t) => {
  const dir = t.testdir({ lower: { 'a.bin': Buffer.alloc(5 * 4096, 'a'), 'b.txt': 'bbb\n' } })
  const store = await TreeStore.create(`${dir}/store`, { lower: `${dir}/lower`, autoFlushMs: 0 })
  let h = await store.open('/a.bin', 'r+')
  await h.write(4096 + 10, Buffer.from('an edit'))
  await h.write(3 * 4096, Buffer.alloc(4096, 'x'))
  await h.write(4096 + 10, Buffer.from('a'.repeat(7))) // put back
  await h.close()
  h = await store.open('/zeros.bin', 'wx')
  await h.write(0, Buffer.alloc(3 * 4096))
  await h.write(3 * 4096, Buffer.from('tail'))
  await h.close()
  await store.mark('M')
  const changed = store.changedSince('M')
  const changedA = covered(store.changedExtents('/a.bin', 'M'))
  const result = await store.compact()
  // A file made in the upper has nothing under it: its zero pages read what "nothing" reads, a hole.
  t.same(result, { files: 2, dataPages: 6, toLower: 4, toZero: 0, bytesFreed: 4 * 4096 }, 'one page back to the lower file, three back to nothing (holes), in two files')
  t.same(
    [...store.extents('/a.bin')].map((e) => [e.start, e.length, e.state]),
    [
      [0, 3 * 4096, 'lower'],
      [3 * 4096, 4096, 'data'],
      [4 * 4096, 4096, 'lower'],
    ],
    'the edited file: only the page that differs is DATA',
  )
  t.same(
    [...store.extents('/zeros.bin')].map((e) => [e.start, e.length, e.state]),
    [
      [0, 3 * 4096, 'hole'],
      [3 * 4096, 4, 'data'],
    ],
    'the new file: its zero pages are holes',
  )
  h = await store.open('/a.bin')
  const a = Buffer.alloc(5 * 4096, 'a')
  a.fill('x', 3 * 4096, 4 * 4096)
  t.ok((await h.read(0, 5 * 4096)).equals(a), 'the edited file reads the same')
  await h.close()
  t.same(store.changedSince('M'), changed, 'nothing is recorded as changed')
  t.same(covered(store.changedExtents('/a.bin', 'M')), changedA, 'not a page more')
  await store.close()
  const report = await checkStore(`${dir}/store`)
  t.ok(report.clean, 'fsck: clean', { problems: report.problems })
})

t.test('killed while compacting: every page reads as before, fsck is clean, a rerun finishes', async (t) => {
  const dir = t.testdir()
  const P = 4096
  const { store, model } = await scrambled(dir, P, 21, 2048) // 8 MiB: several batches
  await store.close()
  nodeFs.cpSync(`${dir}/store`, `${dir}/pristine`, { recursive: true })
  const random = new Random(7)
  for (let kill = 0; kill < 3; kill++) {
    nodeFs.rmSync(`${dir}/store`, { recursive: true })
    nodeFs.cpSync(`${dir}/pristine`, `${dir}/store`, { recursive: true })
    nodeFs.rmSync(`${dir}/ready`, { force: true })
    await runThenKill(CHILD, [`${dir}/store`, `${dir}/ready`], () => nodeFs.existsSync(`${dir}/ready`), random.int(0, 250))
    const reopened = await ImageStore.open(`${dir}/store`, { autoFlushMs: 0 })
    t.ok((await reopened.read(0, reopened.size)).equals(model), `kill ${kill}: the image reads as before`)
    await reopened.close()
    const report = await checkStore(`${dir}/store`)
    t.ok(report.clean, `kill ${kill}: fsck clean`, { problems: report.problems })
  }
  const last = await ImageStore.open(`${dir}/store`, { autoFlushMs: 0 })
  const rest = await last.compact()
  t.ok((await last.read(0, last.size)).equals(model), 'a rerun finishes; the image still reads as before')
  t.same(await last.compact(), { ...rest, dataPages: rest.dataPages - rest.toLower - rest.toZero, toLower: 0, toZero: 0, bytesFreed: 0 }, 'and leaves nothing to compact')
  await last.close()
})

t.test('the CLI', async (t) => {
  const dir = t.testdir()
  const { store } = await scrambled(dir, 4096, 3, 32)
  await store.close()
  const r = await runCli(['compact', `${dir}/store`, '--json'])
  t.equal(r.code, 0, `exit 0: ${r.stderr}`)
  const result = JSON.parse(r.stdout) as { dataPages: number; toLower: number; toZero: number; bytesFreed: number }
  t.ok(result.toLower + result.toZero > 0 && result.bytesFreed === (result.toLower + result.toZero) * 4096, 'the result as JSON', result)
  const text = await runCli(['compact', `${dir}/store`])
  t.match(text.stdout, /data pages? examined: 0 back to LOWER, 0 to ZERO; 0 B given back/, 'a second run, in words')
  for (const [args, code, what] of [
    [['compact', `${dir}/missing`], 'ENOENT', 'a store that does not exist'],
    [['compact'], 'EINVAL', 'no store'],
    [['compact', `${dir}/store`, '--fast'], 'EINVAL', 'an unknown option'],
  ] as const) {
    const bad = await runCli([...args])
    t.not(bad.code, 0, `${what}: refused`)
    t.match(bad.stderr, code, `${what}: ${code}`)
  }
})
