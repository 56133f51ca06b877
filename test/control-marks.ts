// Change tracking and freeze on a running server (issue 12): `pagecow mark`, `marks`, `changes`,
// `unmark`, `freeze`, `thaw` and `watch --since` against a real `pagecow serve` daemon, through its
// control socket, while an NBD client writes. Unflushed writes are listed, a frozen image holds the
// client's write until thaw, and first-dirty events reach the watcher as JSON lines.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import t from 'tap'
import { callStore, changesMethod, ControlServer, freezeMethod, ImageStore, markMethod, thawMethod, unmarkMethod } from '../lib/index.js'
import { NBD_CMD_WRITE } from '../lib/nbd/protocol.js'
import { runCli } from './fixtures/cli-io.js'
import { makeLower } from './fixtures/lower.js'
import { Random } from './fixtures/random.js'
import { childEnv } from './fixtures/child-env.js'
import { serveOnSocket } from './fixtures/pagecow-serve.js'
import { pagecow, ROOT, waitFor } from './fixtures/fuse-mounted.js'
import { RawClient } from './fixtures/nbd-raw-client.js'
import { makeImageStore } from './fixtures/nbd-served.js'
import { stateOf } from './fixtures/promise-state.js'

const PAGE = 4096
const BIN = join(ROOT, 'lib', 'cli', 'bin.ts')


t.test('marks, changes, freeze and first-dirty events through a running pagecow serve', async (t) => {
  const store = await makeImageStore(t)
  const closedFreeze = await pagecow(['freeze', store])
  t.equal(closedFreeze.code, 1, 'freeze of a store no server runs: refused')
  t.match(closedFreeze.stderr, /no server is running.*\(EINVAL\)/)
  const s = await serveOnSocket(t, store)
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

t.test('bad input to the change-tracking commands and control methods: a typed error, nothing changed', async (t) => {
  const dir = t.testdir()
  const lower = makeLower(join(dir, 'lower.img'), 16 * PAGE, new Random(4), 1)
  const storeDir = join(dir, 'store')
  await (await ImageStore.create(storeDir, { lower: lower.path, autoFlushMs: 0 })).close()
  // The CLI on a closed store.
  const cli: Array<[string[], number, RegExp, string]> = [
    [['mark', storeDir, 'a b'], 1, /\(EINVAL\)/, 'a mark name with a space'],
    [['mark', storeDir], 2, /missing required argument/, 'no mark name'],
    [['unmark', storeDir, 'none'], 1, /no mark named "none".*\(ENOENT\)/, 'unmark of no such mark'],
    [['changes', storeDir], 2, /--since/, 'changes without --since'],
    [['changes', storeDir, '--since', 'A', '--json', '--output', 'json'], 2, /contradict/, '--json with --output'],
    [['changes', storeDir, '--since', 'A', '--output', 'yaml'], 2, /output/, 'an unknown output format'],
    [['changes', storeDir, '/a/path', '--since', 'A'], 1, /is an image store; it has no paths.*\(EINVAL\)/, 'a PATH on an image store'],
    [['thaw', storeDir], 1, /no server is running.*\(EINVAL\)/, 'thaw of a store no server runs'],
    [['freeze', storeDir, '--timeout', '-5'], 2, /timeout/, 'a negative freeze timeout'],
  ]
  for (const [argv, code, stderr, what] of cli) {
    const r = await runCli(argv)
    t.equal(r.code, code, `${what}: exit ${code}`)
    t.match(r.stderr, stderr, `${what}: says why`)
  }
  t.same((await runCli(['marks', storeDir, '--json'])).stdout, '[]\n', 'and no mark was made')

  // The control methods through a server's socket.
  const store = await ImageStore.open(storeDir, { autoFlushMs: 0 })
  const control = await ControlServer.listen(store)
  t.teardown(async () => {
    await control.close()
    await store.close()
  })
  await store.mark('A')
  const calls: Array<[() => Promise<unknown>, string, string]> = [
    [() => callStore(storeDir, markMethod, { name: '' }), 'EINVAL', 'mark: an empty name'],
    [() => callStore(storeDir, markMethod, { name: 'A' }), 'EEXIST', 'mark: a name taken'],
    [() => callStore(storeDir, markMethod, { name: 'B', extra: 1 } as never), 'EINVAL', 'mark: an unknown param'],
    [() => callStore(storeDir, unmarkMethod, { name: 'nope' }), 'ENOENT', 'unmark: no such mark'],
    [() => callStore(storeDir, changesMethod, { since: 'nope' }), 'ENOENT', 'changes: no such mark'],
    [() => callStore(storeDir, changesMethod, { since: 'A', path: '/x' }), 'EINVAL', 'changes: a path on an image store'],
    [() => callStore(storeDir, thawMethod, {}), 'EINVAL', 'thaw: not frozen'],
    [() => callStore(storeDir, thawMethod, { path: '/x' }), 'EINVAL', 'thaw: a path on an image store'],
    [() => callStore(storeDir, freezeMethod, { timeoutMs: -1 }), 'EINVAL', 'freeze: a negative timeout'],
  ]
  for (const [call, code, what] of calls) {
    const err = await call().then(
      () => undefined,
      (e: unknown) => e,
    )
    t.match(err, { name: 'PagecowError', code }, `${what}: ${code}`)
  }
  t.same(store.marks().map((m) => m.name), ['A'], 'the marks are as they were')
  t.same(store.frozen(), [], 'nothing is frozen')
})
