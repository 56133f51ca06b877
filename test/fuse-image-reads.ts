// Reads through an image mount return what the store returns, byte for byte, whichever way the
// reply goes: spliced from the lower's page cache (every page of the range LOWER), copied (a page
// DATA or ZERO in the range, or a range too big for the pipe), with zeros after the lower's end
// and after a truncation's cut (SPEC §4). Page-cache reads (whole file) and O_DIRECT reads at odd
// offsets and sizes, on a writable and on a read-only mount.
import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { ImageStore } from '../lib/index.js'
import { checkNothingLeftMounted, fuseUsable, mountStore, mountTestDir, python, unmountAndWait } from './fixtures/fuse-mounted.js'

const KiB = 1024
const MiB = 1024 * KiB
const PAGE = 4096
/** The largest READ the mount asks for: 255 pages. */
const MAX_READ = 255 * PAGE

/** [offset, length] of the O_DIRECT reads. */
const RANGES: Array<[number, number]> = [
  [0, PAGE],
  [1, 10],
  [PAGE - 1, 2],
  [MiB - 100, 200], // LOWER into DATA
  [MiB + 8 * KiB - 5, 10], // DATA into LOWER
  [2 * MiB - 3, 6], // into the ZERO page
  [2.5 * MiB - 5, 10], // across the truncation's cut: zeros after it
  [3 * MiB + 1000, 1000], // across the lower's end (3 MiB + 1234)
  [5 * MiB - 10, 100], // across the end of the image: short
  [0, MAX_READ], // the largest READ, all LOWER: spliced
  [100, MAX_READ], // unaligned: 256 pages, over the pipe's 255: copied
  [3 * MiB, MAX_READ], // the lower's end, then zeros
  [2 * MiB + 4 * PAGE, 300 * KiB],
]

if (fuseUsable(t, ['python3'])) {
  t.test('reads through an image mount equal the store’s, spliced or copied', async (t) => {
    const dir = mountTestDir(t)
    const lower = join(dir, 'disk.raw')
    writeFileSync(lower, randomBytes(3 * MiB + 1234))
    const storeDir = join(dir, 'store')
    const store = await ImageStore.create(storeDir, { lower })
    await store.write(MiB, randomBytes(8 * KiB)) // DATA
    await store.zero(2 * MiB, PAGE) // ZERO
    await store.truncate(2.5 * MiB) // lower bytes past 2.5 MiB are cut…
    await store.truncate(5 * MiB) // …and read as zeros once grown again
    const expected = await store.read(0, 5 * MiB)
    await store.close()
    writeFileSync(join(dir, 'ranges.json'), JSON.stringify(RANGES))
    const mnt = join(dir, 'mnt')
    mkdirSync(mnt)
    for (const readOnly of [false, true]) {
      const m = await mountStore(t, storeDir, mnt, readOnly ? ['--read-only'] : [])
      const how = readOnly ? 'read-only mount' : 'writable mount'
      const whole = readFileSync(m.image!)
      t.equal(whole.length, expected.length, `${how}: the whole image through the page cache, its size`)
      t.ok(whole.equals(expected), `${how}: every byte as the store has it`)
      const got = await python<string[]>(
        t,
        `import os, sys, json, mmap
ranges = json.load(open(sys.argv[2]))
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT)
out = []
for offset, length in ranges:
    buf = mmap.mmap(-1, length + 4096)      # page-aligned memory
    n = os.preadv(fd, [memoryview(buf)[:length]], offset)
    out.append(buf[:n].hex())
print(json.dumps(out))`,
        dir,
        [m.image!, join(dir, 'ranges.json')],
      )
      for (const [i, [offset, length]] of RANGES.entries()) {
        const want = expected.subarray(offset, Math.min(offset + length, expected.length))
        t.equal(got[i], want.toString('hex'), `${how}: O_DIRECT read of ${length} bytes at ${offset}`)
      }
      await unmountAndWait(t, m)
    }
  })
}

checkNothingLeftMounted(t)
