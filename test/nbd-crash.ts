// The NBD server as a real process, killed with SIGKILL: flushed writes survive, and the store
// it leaves is consistent whatever instant the kill hit.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { checkStore, ImageStore } from '../lib/index.js'
import { NBD_CMD_FLUSH, NBD_CMD_WRITE } from '../lib/nbd/protocol.js'
import { expectedLower } from './fixtures/cli-lower.js'
import { RawClient } from './fixtures/nbd-raw-client.js'
import { execFileAsync, haveTools, LOWER_REGIONS, LOWER_SIZE, makeImageStore, shortTempDir } from './fixtures/nbd-served.js'
import { Random } from './fixtures/random.js'
import { childEnv } from './fixtures/child-env.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const SERVE = join(ROOT, 'tools', 'bench', 'nbd-serve.ts')
const PAGE = 4096

/** Start the server process; resolves once it printed its URI. */
async function startServer(t: Test, store: string, socket: string): Promise<{ child: ChildProcess; uri: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', SERVE, store, '--socket', socket, '--auto-flush-ms', '0'], {
    cwd: ROOT,
    env: childEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  let stderr = ''
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()))
  const uri = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not start in 30 s: ${stderr}`)), 30_000)
    child.stdout?.once('data', (d: Buffer) => {
      clearTimeout(timer)
      resolve(d.toString().trim())
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`the server exited (${code}): ${stderr}`))
    })
  })
  return { child, uri }
}

async function kill9(child: ChildProcess): Promise<void> {
  const exited = once(child, 'exit')
  child.kill('SIGKILL')
  await exited
}

t.test('writes survive a SIGKILL of the server after FLUSH, and a restart serves them', async (t) => {
  if (!haveTools(t, ['qemu-io'])) return
  const store = await makeImageStore(t)
  const socket = join(shortTempDir(t), 'nbd.sock')
  const first = await startServer(t, store, socket)
  await execFileAsync('qemu-io', ['-f', 'raw', '-t', 'writeback', '-c', 'write -P 0x61 1M 128k', '-c', 'write -z -u 8M 64k', '-c', 'flush', first.uri])
  await kill9(first.child)

  const opened = await ImageStore.open(store, { readOnly: true })
  t.ok((await opened.read(1 << 20, 128 * 1024)).equals(Buffer.alloc(128 * 1024, 0x61)), 'the flushed write is in the store')
  t.equal([...opened.extents(8 << 20, 65536)][0]?.state, 'zero', 'the flushed zeroing too')
  await opened.close()
  t.ok((await checkStore(store)).clean, 'fsck: clean')

  const second = await startServer(t, store, socket)
  const { stdout } = await execFileAsync('qemu-io', ['-f', 'raw', '-c', 'read -P 0x61 1M 128k', '-c', 'read -P 0 8M 64k', second.uri])
  t.notMatch(stdout, /Pattern verification failed/, 'the restarted server serves them')
  second.child.kill('SIGTERM')
  const [code] = await once(second.child, 'exit')
  t.equal(code, 0, 'SIGTERM: a clean shutdown')
})

t.test('SIGKILL during writes: the store is clean and every page is old or one whole write', async (t) => {
  const store = await makeImageStore(t)
  const socket = join(shortTempDir(t), 'nbd.sock')
  const { child } = await startServer(t, store, socket)
  const rng = new Random(2024)
  const pages = 512 // writes land in the first 2 MiB: lower holes and lower data
  const sent = new Map<number, Set<number>>()
  const mustBeWritten = new Set<number>()
  const clients = [await RawClient.connect(socket), await RawClient.connect(socket)]
  for (const c of clients) {
    await c.start()
    await c.go()
  }
  let killed = false
  const started = Date.now()
  const writer = async (c: RawClient, id: number): Promise<void> => {
    const acked: number[] = []
    for (let i = 0; i < 5000 && !killed && Date.now() - started < 10_000; i++) {
      if (i % 25 === 24) {
        const covered = [...acked]
        c.request(NBD_CMD_FLUSH, 0, 0)
        if ((await c.reply()).errno === 0) covered.forEach((p) => mustBeWritten.add(p))
        continue
      }
      const page = rng.int(0, pages - 4)
      const count = rng.int(1, 4)
      const byte = ((id * 97 + i) % 255) + 1
      for (let p = page; p < page + count; p++) {
        if (!sent.has(p)) sent.set(p, new Set())
        sent.get(p)?.add(byte)
      }
      c.request(NBD_CMD_WRITE, page * PAGE, count * PAGE, { data: Buffer.alloc(count * PAGE, byte) })
      if ((await c.reply()).errno !== 0) throw new Error('a write failed')
      for (let p = page; p < page + count; p++) acked.push(p)
    }
  }
  const writing = clients.map((c, id) => writer(c, id).catch(() => {}))
  await sleep(300 + rng.int(0, 300))
  killed = true
  await kill9(child)
  await Promise.all(writing)
  clients.forEach((c) => c.destroy())
  t.ok(sent.size > 0, `writes were in flight (${sent.size} pages touched)`)

  const report = await checkStore(store)
  t.ok(report.clean, 'fsck: clean')
  t.same(report.problems, [])
  const opened = await ImageStore.open(store, { readOnly: true })
  t.teardown(() => opened.close())
  const lower = expectedLower(LOWER_SIZE, LOWER_REGIONS)
  const bad: string[] = []
  for (let p = 0; p < pages; p++) {
    const bytes = await opened.read(p * PAGE, PAGE)
    const old = bytes.equals(lower.subarray(p * PAGE, (p + 1) * PAGE))
    const whole = bytes.every((b) => b === bytes[0]) && (sent.get(p)?.has(bytes[0] as number) ?? false)
    if (!old && !whole) bad.push(`page ${p}: neither its old bytes nor one whole write`)
    if (old && mustBeWritten.has(p)) bad.push(`page ${p}: written and flushed, yet reads its old bytes`)
  }
  t.same(bad, [], `every page is consistent (${mustBeWritten.size} pages were flushed)`)
})
