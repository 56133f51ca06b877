// HeldFd: a close() while pool work holds the descriptor waits for that work; work after close()
// is refused rather than run on a number that may name another file by then.
import t from 'tap'
import * as nodeFs from 'node:fs'
import { join } from 'node:path'
import { HeldFd } from '../lib/page/held-fd.js'

t.test('close waits for held work; later work is refused', async (t) => {
  const dir = t.testdir({ f: 'held bytes' })
  const fd = nodeFs.openSync(join(dir, 'f'), 'r')
  const held = new HeldFd(fd, 'the test file')
  let release!: () => void
  const gate = new Promise<void>((resolve) => (release = resolve))
  const work = held.hold(async (fd) => {
    await gate
    return nodeFs.fstatSync(fd).size // EBADF if the fd were closed under us
  })
  held.close()
  t.equal(nodeFs.fstatSync(fd).size, 10, 'the descriptor stays open while work holds it')
  release()
  t.equal(await work, 10, 'the held work ran on its own file')
  t.throws(() => nodeFs.fstatSync(fd), { code: 'EBADF' }, 'closed once the work ended')
  await t.rejects(held.hold(async () => 0), { code: 'ECLOSED' }, 'work after close() is refused')
  held.close() // twice: harmless
})
