// `pagecow serve` as a real process: prints the URI, serves, flushes and exits 0 on SIGTERM/SIGINT.
import { mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import t from 'tap'
import { checkStore, createStore, ImageStore } from '../lib/index.js'
import { NBD_CMD_FLUSH, NBD_CMD_WRITE } from '../lib/nbd/protocol.js'
import { runCli } from './fixtures/cli-io.js'
import { RawClient } from './fixtures/nbd-raw-client.js'
import { LOWER_SIZE, makeImageStore, shortTempDir } from './fixtures/nbd-served.js'
import { exitCode, serve } from './fixtures/pagecow-serve.js'

t.test('serve: prints the URI, serves clients, flushes and exits 0 on SIGTERM', async (t) => {
  const store = await makeImageStore(t)
  const socket = join(shortTempDir(t), 'nbd.sock')
  const s = await serve(t, [store, '--socket', socket, '--export-name', 'vm1'])
  t.equal(s.line, `nbd+unix:///vm1?socket=${socket}`)
  const c = await RawClient.connect(socket)
  t.teardown(() => c.destroy())
  await c.start()
  const go = await c.go({ name: 'vm1' })
  t.equal(go.size, LOWER_SIZE)
  c.request(NBD_CMD_WRITE, 4096, 4096, { data: Buffer.alloc(4096, 0x42) })
  t.equal((await c.reply()).errno, 0)
  s.child.kill('SIGTERM')
  await c.closed()
  t.equal(await exitCode(s.child), 0, 'exit 0')
  t.equal(s.stderr(), '', 'nothing on stderr')
  const opened = await ImageStore.open(store, { readOnly: true })
  t.teardown(() => opened.close())
  t.ok((await opened.read(4096, 4096)).equals(Buffer.alloc(4096, 0x42)), 'the unflushed write was flushed at the end')
  t.ok((await checkStore(store)).clean)
})

t.test('serve --json on a TCP port; SIGINT stops it too; --read-only refuses writes', async (t) => {
  const store = await makeImageStore(t)
  const s = await serve(t, [store, '--port', '0', '--json', '--read-only'])
  const info = JSON.parse(s.line) as { uri: string; host: string; port: number; readOnly: boolean; size: number }
  t.match(info, { host: '127.0.0.1', readOnly: true, size: LOWER_SIZE })
  t.equal(info.uri, `nbd://127.0.0.1:${info.port}/`)
  const c = await RawClient.connect({ port: info.port })
  t.teardown(() => c.destroy())
  await c.start()
  await c.go()
  c.request(NBD_CMD_WRITE, 0, 512, { data: Buffer.alloc(512, 1) })
  t.equal((await c.reply()).errno, 1, 'EPERM')
  c.request(NBD_CMD_FLUSH, 0, 0)
  t.equal((await c.reply()).errno, 0)
  s.child.kill('SIGINT')
  t.equal(await exitCode(s.child), 0)
})

t.test('serve: bad options are EINVAL errors (exit 2), a store that cannot be served exit 1', async (t) => {
  const store = await makeImageStore(t)
  const treeLower = join(dirname(store), 'tree')
  mkdirSync(treeLower)
  const treeStore = join(dirname(store), 'tree-store')
  await (await createStore(treeStore, { lower: treeLower })).close()
  // Exit 2: the command line is wrong; exit 1: it was right, but the store cannot be served.
  const cases: Array<[string, string[], RegExp, number]> = [
    ['socket and port', [store, '--socket', '/tmp/x.sock', '--port', '1'], /--socket.*not both.*EINVAL/, 2],
    ['a port out of range', [store, '--port', '65536'], /--port.*EINVAL/, 2],
    ['a misspelled option', [store, '--read-onyl'], /unknown option.*EINVAL/, 2],
    ['no such store', [join(store, 'nope')], /no pagecow store.*ENOENT/, 1],
    ['a tree store', [treeStore], /tree store.*only image stores.*EINVAL/, 1],
  ]
  for (const [name, args, message, exit] of cases) {
    const run = await runCli(['serve', ...args]) // fails before serving: safe in-process
    t.equal(run.code, exit, name)
    t.match(run.stderr, message, name)
    t.equal(run.stdout, '', `${name}: nothing on stdout`)
  }
})
