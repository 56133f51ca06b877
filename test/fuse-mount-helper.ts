// mount(8) from util-linux 2.39 on looks at the new mount (statx) before it exits. The server
// must already be answering then, or mount(8) and the server wait for each other for ever. A
// wrapper around this machine's mount(8) that stats the mount point plays the newer one.
import t from 'tap'
import { chmodSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { TreeStore } from '../lib/index.js'
import { checkNothingLeftMounted, fuseUsable, isMounted, mountTestDir, pagecow, run } from './fixtures/fuse-mounted.js'

t.test('a mount(8) that stats the new mount before it exits does not hang the server', async (t) => {
  if (!fuseUsable(t, ['stat'])) return
  const dir = mountTestDir(t)
  const lower = join(dir, 'lower')
  mkdirSync(lower)
  writeFileSync(join(lower, 'hello'), 'hi\n')
  const store = join(dir, 'store')
  await (await TreeStore.create(store, { lower })).close()
  const mnt = join(dir, 'mnt')
  mkdirSync(mnt)
  const bin = join(dir, 'bin')
  mkdirSync(bin)
  const realMount = (await run('sh', ['-c', 'command -v mount'])).stdout.trim()
  // The last argument is the mount point; stat it once the real mount(8) returned.
  writeFileSync(join(bin, 'mount'), `#!/bin/sh\n"${realMount}" "$@" || exit $?\nfor last; do :; done\nexec stat "$last" > /dev/null\n`)
  chmodSync(join(bin, 'mount'), 0o755)
  t.teardown(async () => {
    if (isMounted(mnt)) await run('umount', ['-l', mnt])
  })
  const mounted = await pagecow(['mount', store, mnt], { env: { ...process.env, PATH: `${bin}:${process.env.PATH}` }, timeoutMs: 30_000 })
  t.equal(mounted.code, 0, `mounted, no hang: ${mounted.stderr}`)
  t.same(readdirSync(mnt), ['hello'], 'and serving')
  const unmounted = await pagecow(['umount', mnt])
  t.equal(unmounted.code, 0, unmounted.stderr)
})

checkNothingLeftMounted(t)
