// Change tracking and freeze on a running server (issue 12): `pagecow mark`, `marks`, `changes`,
// `unmark`, `freeze`, `thaw` and `watch --since` against a real `pagecow serve` daemon, through its
// control socket, while an NBD client writes. Unflushed writes are listed, a frozen image holds the
// client's write until thaw, and first-dirty events reach the watcher as JSON lines.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { NBD_CMD_WRITE } from '../lib/nbd/protocol.js'
import { childEnv } from './fixtures/child-env.js'
import { pagecow, ROOT, waitFor } from './fixtures/fuse-mounted.js'
import { RawClient } from './fixtures/nbd-raw-client.js'
import { makeImageStore, shortTempDir } from './fixtures/nbd-served.js'
import { stateOf } from './fixtures/promise-state.js'

const PAGE = 4096
const BIN = join(ROOT, 'lib', 'cli', 'bin.ts')

async function serve(t: Test, store: string): Promise<{ child: ChildProcess; socket: string }> {
  const socket = join(shortTempDir(t), 'nbd.sock')
  const child = spawn(process.execPath, ['--import', 'tsx', BIN, 'serve', store, '--socket', socket], { cwd: ROOT, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve())
    child.once('exit', (code) => reject(new Error(`pagecow serve exited ${code}: ${stderr}`)))
  })
  return { child, socket }
}

t.test('marks, changes, freeze and first-dirty events through a running pagecow serve', async (t) => {
  const store = await makeImageStore(t)
  const closedFreeze = await pagecow(['freeze', store])
  t.equal(closedFreeze.code, 1, 'freeze of a store no server runs: refused')
  t.match(closedFreeze.stderr, /no server is running.*\(EINVAL\)/)
  const s = await serve(t, store)
  const client = await RawClient.connect(s.socket)
  t.teardown(() => client.destroy())
  await client.start()
  await client.go()
  const write = async (page: number, byte: number) => {
    client.request(NBD_CMD_WRITE, page * PAGE, PAGE, { data: Buffer.alloc(PAGE, byte) })
    t.equal((await client.reply()).errno, 0, `NBD write of page ${page}`)
  }

  const marked = await pagecow(['mark', store, 'M', '--json'])
  t.equal(marked.code, 0, `pagecow mark through the server: ${marked.stderr}`)
  t.equal((JSON.parse(marked.stdout) as { name: string }).name, 'M')
  const marks = await pagecow(['marks', store, '--json'])
  t.same((JSON.parse(marks.stdout) as Array<{ name: string }>).map((m) => m.name), ['M'], 'pagecow marks lists it')

  await write(5, 0x55) // no NBD flush: the server holds it
  const changes = await pagecow(['changes', store, '--since', 'M', '--json'])
  t.equal(changes.code, 0, changes.stderr)
  t.same((JSON.parse(changes.stdout) as { extents: unknown[] }).extents, [{ start: 5 * PAGE, length: PAGE, change: 'written', state: 'data' }], 'changes lists the unflushed write')

  const watch = spawn(process.execPath, ['--import', 'tsx', BIN, 'watch', store, '--since', 'M', '--events', 'first-dirty'], { cwd: ROOT, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => {
    if (watch.exitCode === null && watch.signalCode === null) watch.kill('SIGKILL')
  })
  let out = ''
  watch.stdout.on('data', (d: Buffer) => (out += d.toString()))
  // The watcher is subscribed once its first event can arrive: write to new blocks until one does.
  let page = 32
  for (; page < 32 + 16 * 40 && !out.includes('\n'); page += 16) {
    await write(page, 0x66)
    await waitFor(() => out.includes('\n'), 250)
  }
  const event = JSON.parse(out.split('\n')[0]!) as { event: string; mark: string; offset: number; length: number }
  t.match(event, { event: 'first-dirty', mark: 'M', length: 64 * 1024 }, 'a first-dirty event as a JSON line')
  t.equal(event.offset, Math.floor((page - 16) / 16) * 64 * 1024, 'for the block the write first dirtied')
  watch.kill('SIGINT')
  await once(watch, 'exit')

  t.equal((await pagecow(['freeze', store])).code, 0, 'pagecow freeze through the server')
  client.request(NBD_CMD_WRITE, 900 * PAGE, PAGE, { data: Buffer.alloc(PAGE, 0x99) })
  const reply = client.reply()
  await new Promise((resolve) => setTimeout(resolve, 400))
  t.equal(await stateOf(reply), 'pending', 'the NBD write waits while the image is frozen')
  const frozenAgain = await pagecow(['freeze', store])
  t.match(frozenAgain.stderr, /\(EBUSY\)/, 'freezing twice: EBUSY')
  t.equal((await pagecow(['thaw', store])).code, 0, 'pagecow thaw')
  t.equal((await reply).errno, 0, 'the write lands after thaw')

  t.equal((await pagecow(['unmark', store, 'M'])).code, 0, 'pagecow unmark through the server')
  const gone = await pagecow(['changes', store, '--since', 'M'])
  t.match(gone.stderr, /no mark named "M".*\(ENOENT\)/, 'the mark is gone')
  s.child.kill('SIGTERM')
  await once(s.child, 'exit')
})
