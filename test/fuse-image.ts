// An image store mounted through FUSE: a directory holding the merged image as one file, which
// qemu-img, qemu-io and dd use as a raw disk. Compared with the lower before and after writes,
// mapped (holes stay holes), then read back through the store after unmounting; and mounted
// read-only, where writes fail with EROFS.
import { createHash } from 'node:crypto'
import { closeSync, mkdirSync, openSync, readFileSync, readSync, statSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { checkStore, ImageStore } from '../lib/index.js'
import { runCli } from './fixtures/cli-io.js'
import { makeSparseLower } from './fixtures/cli-lower.js'
import { checkNothingLeftMounted, fuseUsable, haveTools, mountStore, mountTestDir, python, run, unmountAndWait } from './fixtures/fuse-mounted.js'

const MiB = 1024 * 1024
const P = 4096
const SIZE = 64 * MiB
/** Lower data regions ([start, length]); everything else is a hole. */
const REGIONS: Array<[number, number]> = [
  [MiB, MiB],
  [8 * MiB + P, P],
  [40 * MiB, 2 * MiB],
]
/** The writes made through the mount: python (5 bytes in a hole), qemu-io (64 KiB), dd (a page over lower data). */
const PY_WRITE = { offset: 20 * MiB + 100, data: 'hello' }
const QEMU_WRITE = { offset: 3 * MiB, length: 64 * 1024, byte: 0xab }
const DD_WRITE = { offset: 40 * MiB + 8 * P, length: P, byte: 0xfe } // lower bytes are 1..251

interface MapEntry {
  start: number
  length: number
  data: boolean
  zero: boolean
}

/** Data ranges of a qemu-img map, adjacent ones merged, as "start+length". */
function dataRanges(map: MapEntry[]): string[] {
  const out: Array<[number, number]> = []
  for (const e of map) {
    if (!e.data) continue
    const last = out[out.length - 1]
    if (last && last[0] + last[1] === e.start) last[1] += e.length
    else out.push([e.start, e.length])
  }
  return out.map(([s, l]) => `${s}+${l}`)
}

/** Byte ranges where two files differ, as "start+length". */
function differences(a: string, b: string): string[] {
  const fa = openSync(a, 'r')
  const fb = openSync(b, 'r')
  const out: Array<[number, number]> = []
  try {
    const ba = Buffer.alloc(MiB)
    const bb = Buffer.alloc(MiB)
    for (let pos = 0; pos < SIZE; pos += MiB) {
      readSync(fa, ba, 0, MiB, pos)
      readSync(fb, bb, 0, MiB, pos)
      if (ba.equals(bb)) continue
      for (let i = 0; i < MiB; i++) {
        if (ba[i] === bb[i]) continue
        const last = out[out.length - 1]
        if (last && last[0] + last[1] === pos + i) last[1]++
        else out.push([pos + i, 1])
      }
    }
  } finally {
    closeSync(fa)
    closeSync(fb)
  }
  return out.map(([s, l]) => `${s}+${l}`)
}

function sha(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex')
}

if (fuseUsable(t, ['qemu-img', 'qemu-io', 'python3', 'dd'])) {
  t.test('an image store mounted: qemu-img, qemu-io and dd use its file as a disk', async (t) => {
    const dir = mountTestDir(t)
    const lower = join(dir, 'disk.raw')
    const storeDir = join(dir, 'store')
    const mnt = join(dir, 'mnt')
    makeSparseLower(lower, SIZE, REGIONS)
    const lowerSum = sha(lower)
    const lowerMtime = statSync(lower).mtimeMs
    await (await ImageStore.create(storeDir, { lower })).close()
    mkdirSync(mnt)
    const m = await mountStore(t, storeDir, mnt)
    const image = join(mnt, 'disk.raw')
    t.equal(m.image, image, 'the mount holds one file named after the lower image')
    t.same((await run('ls', ['-A', mnt])).stdout, 'disk.raw\n', 'and nothing else')

    const info = await run('qemu-img', ['info', '--output=json', '-f', 'raw', image])
    t.equal(info.code, 0, `qemu-img info${info.stderr ? `: ${info.stderr}` : ''}`)
    t.match(JSON.parse(info.stdout), { 'virtual-size': SIZE, format: 'raw' })

    const same = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', lower, image])
    t.equal(same.code, 0, 'qemu-img compare: identical to the lower before any write')
    t.match(same.stdout, /Images are identical/)
    const lowerMap = await run('qemu-img', ['map', '--output=json', '-f', 'raw', lower])
    const mapBefore = await run('qemu-img', ['map', '--output=json', '-f', 'raw', image])
    t.equal(mapBefore.code, 0, mapBefore.stderr)
    t.same(dataRanges(JSON.parse(mapBefore.stdout) as MapEntry[]), dataRanges(JSON.parse(lowerMap.stdout) as MapEntry[]), 'qemu-img map shows the lower’s holes and data')

    await t.test('a write through the mount: compare finds it, exactly there', async (t) => {
      await python(t, 'import os,sys; fd=os.open(sys.argv[1], os.O_RDWR); os.pwrite(fd, sys.argv[3].encode(), int(sys.argv[2])); os.fsync(fd); print(1)', mnt, [image, String(PY_WRITE.offset), PY_WRITE.data])
      const cmp = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', lower, image])
      t.equal(cmp.code, 1, 'qemu-img compare: the images differ')
      t.match(cmp.stdout, `Content mismatch at offset ${Math.floor(PY_WRITE.offset / 512) * 512}!`, 'first in the sector written')
      t.same(differences(lower, image), [`${PY_WRITE.offset}+${PY_WRITE.data.length}`], 'and nowhere but the bytes written')
    })

    await t.test('qemu-io writes and reads a pattern; dd overwrites a page of lower data', async (t) => {
      const { offset, length, byte } = QEMU_WRITE
      const w = await run('qemu-io', ['-f', 'raw', '-c', `write -P 0x${byte.toString(16)} ${offset} ${length}`, image])
      t.equal(w.code, 0, `qemu-io write${w.stderr ? `: ${w.stderr}` : ''}`)
      t.match(w.stdout, `wrote ${length}/${length} bytes at offset ${offset}`)
      const r = await run('qemu-io', ['-f', 'raw', '-c', `read -P 0x${byte.toString(16)} ${offset} ${length}`, '-c', `read -P 0 ${offset + length} ${P}`, image])
      t.equal(r.code, 0, r.stderr)
      t.notMatch(r.stdout, /Pattern verification failed/, 'the pattern reads back; the hole after it still reads zeros')
      const dd = await run('dd', ['of=' + image, 'bs=4096', `seek=${DD_WRITE.offset / P}`, 'count=1', 'conv=notrunc,fsync', 'status=none'], { input: Buffer.alloc(P, DD_WRITE.byte) })
      t.equal(dd.code, 0, dd.stderr)
      t.same(
        differences(lower, image),
        [`${QEMU_WRITE.offset}+${QEMU_WRITE.length}`, `${PY_WRITE.offset}+${PY_WRITE.data.length}`, `${DD_WRITE.offset}+${DD_WRITE.length}`],
        'the image differs from the lower exactly where written',
      )
    })

    await t.test('qemu-img map shows the holes of the merged image', async (t) => {
      const map = await run('qemu-img', ['map', '--output=json', '-f', 'raw', image])
      t.equal(map.code, 0, map.stderr)
      const entries = JSON.parse(map.stdout) as MapEntry[]
      const pyPage = Math.floor(PY_WRITE.offset / P) * P
      t.same(dataRanges(entries), [`${MiB}+${MiB}`, `${QEMU_WRITE.offset}+${QEMU_WRITE.length}`, `${8 * MiB + P}+${P}`, `${pyPage}+${P}`, `${40 * MiB}+${2 * MiB}`], 'data: the lower’s regions and the pages written; holes elsewhere')
      t.ok(entries.filter((e) => !e.data).every((e) => e.zero), 'every hole reads as zeros')
      t.equal(entries.reduce((n, e) => n + e.length, 0), SIZE, 'the map covers the image')
    })

    await unmountAndWait(t, m)

    await t.test('after unmounting: the store holds the writes, page by page; the lower is untouched', async (t) => {
      const store = await ImageStore.open(storeDir, { readOnly: true })
      t.teardown(() => store.close())
      t.ok((await store.read(PY_WRITE.offset, 5)).equals(Buffer.from(PY_WRITE.data)))
      t.ok((await store.read(QEMU_WRITE.offset, QEMU_WRITE.length)).equals(Buffer.alloc(QEMU_WRITE.length, QEMU_WRITE.byte)))
      t.ok((await store.read(DD_WRITE.offset, P)).equals(Buffer.alloc(P, DD_WRITE.byte)))
      const pages = QEMU_WRITE.length / P + 1 + 1
      t.equal(store.info().pages.data, pages, `${pages} pages copied: one per page written, no more`)
      const map = await runCli(['map', storeDir, '--output=json'])
      const depth0 = (JSON.parse(map.stdout) as Array<{ start: number; length: number; depth: number }>).filter((e) => e.depth === 0).map((e) => `${e.start}+${e.length}`)
      t.same(depth0, [`${QEMU_WRITE.offset}+${QEMU_WRITE.length}`, `${Math.floor(PY_WRITE.offset / P) * P}+${P}`, `${DD_WRITE.offset}+${P}`], 'pagecow map: the upper holds exactly those pages')
      t.ok((await checkStore(storeDir)).clean, 'fsck: clean')
      t.equal(sha(lower), lowerSum, 'the lower’s bytes are unchanged')
      t.equal(statSync(lower).mtimeMs, lowerMtime, 'and its mtime')
    })

    const ro = await mountStore(t, storeDir, mnt, ['--read-only'])
    await t.test('mounted read-only: reads the writes, refuses new ones with EROFS', async (t) => {
      t.equal(statSync(image).mode & 0o777, 0o444, 'the image shows read-only')
      const cmp = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', lower, image])
      t.equal(cmp.code, 1, 'the writes are there')
      const w = await run('qemu-io', ['-f', 'raw', '-c', `write -P 0x11 0 ${P}`, image])
      t.not(w.code, 0, 'qemu-io cannot write')
      t.match(w.stderr + w.stdout, /Read-only file system/)
      const py = await python<string>(t, 'import os,sys,errno\ntry:\n  os.open(sys.argv[1], os.O_RDWR)\n  print("\\"opened\\"")\nexcept OSError as e:\n  print(\'"%s"\' % errno.errorcode[e.errno])', mnt, [image])
      t.equal(py, 'EROFS')
    })
    await unmountAndWait(t, ro)
    t.ok((await checkStore(storeDir)).clean, 'fsck: still clean')
    t.equal(sha(lower), lowerSum, 'the lower is untouched')
  })

  t.test('fallocate: punch-hole and zero-range make ZERO pages (discard from a guest); plain allocation is refused', async (t) => {
    if (!haveTools(t, ['fallocate'], 'install util-linux')) return
    const dir = mountTestDir(t)
    const lower = join(dir, 'disk.raw')
    const storeDir = join(dir, 'store')
    const mnt = join(dir, 'mnt')
    makeSparseLower(lower, SIZE, REGIONS)
    const before = readFileSync(lower)
    await (await ImageStore.create(storeDir, { lower })).close()
    mkdirSync(mnt)
    const m = await mountStore(t, storeDir, mnt)
    const image = join(mnt, 'disk.raw')
    const punch = await run('fallocate', ['-p', '-o', String(MiB + P), '-l', String(2 * P), image])
    t.equal(punch.code, 0, `punch-hole over lower data: ${punch.stderr}`)
    const zero = await run('fallocate', ['-z', '-o', String(MiB + 100), '-l', '50', image])
    t.equal(zero.code, 0, `zero-range inside a page: ${zero.stderr}`)
    const plain = await run('fallocate', ['-l', String(P), image])
    t.not(plain.code, 0, 'plain allocation is refused (nothing can be reserved)')
    t.match(plain.stderr, /not supported/)
    const expected = Buffer.from(before)
    expected.fill(0, MiB + P, MiB + 3 * P)
    expected.fill(0, MiB + 100, MiB + 150)
    t.ok(readFileSync(image).equals(expected), 'the punched and zeroed ranges read zeros; nothing else changed')
    await unmountAndWait(t, m)
    const map = JSON.parse((await runCli(['map', storeDir, '--output=json'])).stdout) as Array<{ start: number; length: number; depth: number; zero: boolean; data: boolean }>
    const upper = map.filter((e) => e.depth === 0).map((e) => `${e.start}+${e.length} ${e.data ? 'data' : 'zero'}`)
    t.same(upper, [`${MiB}+${P} data`, `${MiB + P}+${2 * P} zero`], 'the partial page is DATA (zeros written), the whole pages ZERO (no space)')
    t.ok((await checkStore(storeDir)).clean, 'fsck: clean')
    t.ok(readFileSync(lower).equals(before), 'the lower is untouched')
  })
}

checkNothingLeftMounted(t)
