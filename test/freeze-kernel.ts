// freeze()/thaw() beside the kernel's own freeze (fsfreeze(8): FIFREEZE/FITHAW on a loop-mounted
// ext4): the same answers to freezing twice (EBUSY) and thawing a thawed file (EINVAL), and the
// same behaviour for a writer (it waits, then its write lands at thaw) and a reader of the very
// bytes being written (answered meanwhile, with the bytes of the freeze).
import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { ImageStore, isPagecowError } from '../lib/index.js'
import { haveTools, run, waitFor } from './fixtures/fuse-mounted.js'
import { onSmallFs } from './fixtures/small-fs.js'
import { stateOf } from './fixtures/promise-state.js'

/** `fsfreeze -f|-u mnt`: the errno name it failed with, or 'ok'. */
function fsfreeze(mode: '-f' | '-u', mnt: string): string {
  const r = spawnSync('fsfreeze', [mode, mnt], { encoding: 'utf8' })
  if (r.status === 0) return 'ok'
  if (/Device or resource busy/.test(r.stderr)) return 'EBUSY'
  if (/Invalid argument/.test(r.stderr)) return 'EINVAL'
  return `exit ${r.status}: ${r.stderr.trim()}`
}

/** The code a call failed with, or 'ok'. */
async function codeOf(call: () => Promise<unknown>): Promise<string> {
  try {
    await call()
    return 'ok'
  } catch (err) {
    return isPagecowError(err) ? err.code : String(err)
  }
}

t.test('freezing twice and thawing twice: the kernel and pagecow answer alike', async (t) => {
  if (!haveTools(t, ['fsfreeze', 'mkfs.ext4', 'python3', 'cat'], 'util-linux, e2fsprogs')) return
  await onSmallFs(t, 'ext4', 16, async (mnt, dir) => {
    const file = join(mnt, 'data')
    writeFileSync(file, Buffer.alloc(8192, 'k'))
    spawnSync('sync')
    const lower = join(dir, 'lower.img')
    writeFileSync(lower, Buffer.alloc(8192, 'k'))
    const store = await ImageStore.create(join(dir, 'store'), { lower, autoFlushMs: 0 })
    // A frozen ext4 holds its writers in D state: never leave it frozen, whatever fails.
    const safety = setTimeout(() => fsfreeze('-u', mnt), 30_000)
    try {
      const kernel: string[] = []
      const ours: string[] = []
      kernel.push(fsfreeze('-f', mnt))
      ours.push(await codeOf(() => store.freeze()))

      // A writer of the first page waits on both; a reader of that page is answered on both.
      const writer = run('python3', ['-c', `import os; fd = os.open('${file}', os.O_WRONLY); os.pwrite(fd, b'NEW', 0); print('ok')`])
      const ourWrite = store.write(0, Buffer.from('NEW'))
      t.ok(await waitFor(() => store.frozen()[0]?.waiting === 1), 'our writer waits')
      await new Promise((resolve) => setTimeout(resolve, 300))
      t.equal(await stateOf(writer), 'pending', 'the kernel\'s writer waits')
      const cat = await run('cat', [file], { timeoutMs: 10_000 })
      t.equal(cat.stdout.slice(0, 3), 'kkk', 'the kernel answers a read of the page being written, with the bytes of the freeze')
      t.equal((await store.read(0, 3)).toString(), 'kkk', 'so does pagecow')

      kernel.push(fsfreeze('-f', mnt))
      ours.push(await codeOf(() => store.freeze()))
      kernel.push(fsfreeze('-u', mnt))
      ours.push(await codeOf(() => store.thaw()))
      t.equal((await writer).stdout.trim(), 'ok', 'the kernel\'s write lands after thaw')
      await ourWrite
      t.equal((await store.read(0, 3)).toString(), 'NEW', 'and ours')
      kernel.push(fsfreeze('-u', mnt))
      ours.push(await codeOf(() => store.thaw()))
      t.same(kernel, ['ok', 'EBUSY', 'ok', 'EINVAL'], 'the kernel: freeze, EBUSY, thaw, EINVAL')
      t.same(ours, kernel, 'pagecow answers the same')
    } finally {
      clearTimeout(safety)
      fsfreeze('-u', mnt)
      await store.close()
    }
  })
})
