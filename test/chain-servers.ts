// A chain served: NBD (`pagecow serve`) and FUSE (`pagecow mount`) read the merged image of a
// store layered on stores, byte for byte as the library does; the bases stay sealed meanwhile.
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { ImageStore } from '../lib/index.js'
import { makeSparseLower } from './fixtures/cli-lower.js'
import { runCli } from './fixtures/cli-io.js'
import { checkNothingLeftMounted, fuseUsable, mountStore, mountTestDir, unmountAndWait } from './fixtures/fuse-mounted.js'
import { haveTools } from './fixtures/nbd-served.js'
import { serveOnSocket } from './fixtures/pagecow-serve.js'

const P = 4096
const SIZE = 512 * P

/** disk.raw <- a <- b <- c, each store writing and zeroing pages of its own; c's merged bytes. */
async function makeChain(dir: string): Promise<{ top: string; bytes: Buffer }> {
  makeSparseLower(join(dir, 'disk.raw'), SIZE, [
    [0, 8 * P],
    [300 * P, 50 * P],
  ])
  let below = join(dir, 'disk.raw')
  for (const [i, name] of ['a', 'b', 'c'].entries()) {
    const store = await ImageStore.create(join(dir, name), { lower: below, autoFlushMs: 0 })
    await store.write((10 + i) * P + 100, Buffer.alloc(3 * P, 0x61 + i))
    await store.write((305 + 7 * i) * P, Buffer.alloc(P, 0x71 + i))
    await store.zero((2 + i) * P, P)
    await store.close()
    below = join(dir, name)
  }
  const top = await ImageStore.open(below, { readOnly: true })
  const bytes = await top.read(0, top.size)
  await top.close()
  return { top: below, bytes }
}

t.test('NBD: a client reads the chain through pagecow serve', async (t) => {
  if (!haveTools(t, ['nbdcopy'])) return
  const dir = t.testdir()
  const { top, bytes } = await makeChain(dir)
  const s = await serveOnSocket(t, top)
  const out = join(dir, 'copied.img')
  execFileSync('nbdcopy', [`nbd+unix:///?socket=${s.socket}`, out])
  t.ok(readFileSync(out).equals(bytes), 'nbdcopy of the export is the merged image of the chain')
  s.child.kill('SIGTERM')
  const base = await runCli(['write', join(dir, 'b'), '--offset', '0'])
  t.match(base.stderr, /sealed.*\(EROFS\)/, 'a base of the served chain stays sealed')
})

if (fuseUsable(t)) {
  t.test('FUSE: the mounted chain holds the merged image, named after the disk at the bottom', async (t) => {
    const dir = mountTestDir(t)
    const { top, bytes } = await makeChain(dir)
    const mnt = join(dir, 'mnt')
    mkdirSync(mnt)
    const m = await mountStore(t, top, mnt)
    t.equal(m.image, join(mnt, 'disk.raw'))
    t.ok(readFileSync(m.image!).equals(bytes), 'the file in the mount reads as the chain')
    await unmountAndWait(t, m)
  })
  checkNothingLeftMounted(t)
}
