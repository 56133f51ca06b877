// A frozen image served over NBD to a real client (qemu-io): writes and write-zeroes wait while
// a read on the same connection, of the same page, is answered with the bytes of the freeze;
// trim waits too; thaw lets them land; a freeze timeout reaches the client as an I/O error.
import { spawn } from 'node:child_process'
import t from 'tap'
import { haveTools, serveStore } from './fixtures/nbd-served.js'
import { waitFor } from './fixtures/fuse-mounted.js'
import { stateOf } from './fixtures/promise-state.js'

const KiB = 1024

/** qemu-io as a child, its output collected as it comes (to see a read done while writes wait). */
function qemuIo(uri: string, commands: string[]): { output: () => string; exit: Promise<number | null> } {
  const args = ['-f', 'raw', ...commands.flatMap((c) => ['-c', c]), uri]
  // stdbuf: qemu-io's stdout is a pipe here, which stdio would buffer until exit.
  const child = spawn('stdbuf', ['-oL', 'qemu-io', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let text = ''
  child.stdout.on('data', (b: Buffer) => (text += b.toString()))
  child.stderr.on('data', (b: Buffer) => (text += b.toString()))
  const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
  void exit.then(() => clearTimeout(timer))
  return { output: () => text, exit }
}

t.test('writes and write-zeroes to a frozen image wait; a read on the same connection is answered', async (t) => {
  if (!haveTools(t, ['qemu-io', 'stdbuf'])) return
  const s = await serveStore(t)
  const safety = setTimeout(() => s.store.thawAll(), 30_000) // never leave the client hanging
  t.teardown(() => clearTimeout(safety))
  await s.store.freeze()
  const io = qemuIo(s.uri, ['aio_write -P 0xab 0 4k', 'aio_write -z -u 8k 4k', 'read -P 0 0 4k', 'aio_flush'])
  t.ok(await waitFor(() => s.store.frozen()[0]?.waiting === 2), 'the WRITE and the WRITE_ZEROES reached the store and wait')
  t.ok(await waitFor(() => /read 4096\/4096 bytes at offset 0\b/.test(io.output())), 'the read of the page being written is answered meanwhile')
  t.notMatch(io.output(), /Pattern verification failed/, 'with the bytes of the freeze (zeros)')
  t.equal(await stateOf(io.exit), 'pending', 'qemu-io waits for its writes')
  t.same(await s.store.read(0, 4 * KiB), Buffer.alloc(4 * KiB), 'nothing landed')
  await s.store.thaw()
  t.equal(await io.exit, 0, `qemu-io exits 0: ${io.output().trim()}`)
  t.match(io.output(), /wrote 4096\/4096 bytes at offset 0\b/)
  t.same(await s.store.read(0, 4 * KiB), Buffer.alloc(4 * KiB, 0xab), 'the write landed after thaw')
  t.match([...s.store.extents(8 * KiB, 4 * KiB)], [{ state: 'zero' }], 'and the zeroes')
})

t.test('trim waits too; a freeze timeout is an I/O error for the client', async (t) => {
  if (!haveTools(t, ['qemu-io', 'stdbuf'])) return
  const s = await serveStore(t)
  const safety = setTimeout(() => s.store.thawAll(), 30_000)
  t.teardown(() => clearTimeout(safety))
  await s.store.freeze()
  const trim = qemuIo(s.uri, ['discard 1M 64k'])
  t.ok(await waitFor(() => s.store.frozen()[0]?.waiting === 1), 'the TRIM reached the store and waits')
  t.match([...s.store.extents(1024 * KiB, 64 * KiB)], [{ state: 'lower' }], 'nothing trimmed yet')
  await s.store.thaw()
  t.equal(await trim.exit, 0, `qemu-io exits 0: ${trim.output().trim()}`)
  t.match([...s.store.extents(1024 * KiB, 64 * KiB)], [{ state: 'zero', length: 64 * KiB }], 'trimmed after thaw')

  await s.store.freeze({ timeoutMs: 200 })
  const late = qemuIo(s.uri, ['write -P 0xcd 0 4k'])
  await late.exit
  t.match(late.output(), /write failed: Input\/output error/, 'EFROZEN reaches an NBD client as EIO')
  t.same(await s.store.read(0, 4), Buffer.alloc(4), 'and the write did not land')
  await s.store.thaw()
})
