// The NBD server against real clients: qemu-img, qemu-io, nbdinfo and nbdcopy as child processes.
import { readFileSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { exportImage, type ImageStore } from '../lib/index.js'
import { NBD_CMD_READ, NBD_CMD_WRITE } from '../lib/nbd/protocol.js'
import { RawClient } from './fixtures/nbd-raw-client.js'
import { execFileAsync, haveTools, LOWER_SIZE, normaliseMap, serveStore, stateFlags } from './fixtures/nbd-served.js'
import { Random } from './fixtures/random.js'

const MiB = 1024 * 1024

/** Writes of every kind through the library, so the export has DATA, ZERO, LOWER and holes. */
async function mixedWrites(store: ImageStore): Promise<void> {
  const rng = new Random(5)
  await store.write(MiB + 100, rng.bytes(64 * 1024)) // partial pages over lower data
  await store.write(5 * MiB, rng.bytes(3 * 4096)) // whole pages over a lower hole
  await store.zero(2 * MiB, MiB / 2) // lower data becomes ZERO pages
  await store.discard(12 * MiB, MiB / 4)
  await store.zero(14 * MiB + 10, 100) // partial page: written zeros
}

async function storeBytes(store: ImageStore): Promise<Buffer> {
  const chunks: Buffer[] = []
  for (let pos = 0; pos < store.size; pos += 4 * MiB) chunks.push(await store.read(pos, Math.min(4 * MiB, store.size - pos)))
  return Buffer.concat(chunks)
}

function patch(path: string, offset: number, data: Buffer): void {
  const fd = openSync(path, 'r+')
  writeSync(fd, data, 0, data.length, offset)
  closeSync(fd)
}

t.test('qemu-img convert of the export equals exportImage() of the store', async (t) => {
  if (!haveTools(t, ['qemu-img'])) return
  const s = await serveStore(t, { prepare: mixedWrites })
  const fromNbd = join(s.dir, 'from-nbd.img')
  const expected = join(s.dir, 'expected.img')
  await execFileAsync('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', s.uri, fromNbd])
  await exportImage(s.store, expected)
  const a = readFileSync(fromNbd)
  t.equal(a.length, LOWER_SIZE)
  t.ok(a.equals(readFileSync(expected)), 'byte for byte')
})

t.test('qemu-io writes land: qemu-img compare against the expected image', async (t) => {
  if (!haveTools(t, ['qemu-img', 'qemu-io'])) return
  const s = await serveStore(t)
  const expected = join(s.dir, 'expected.img')
  await exportImage(s.store, expected)
  await execFileAsync('qemu-io', [
    '-f', 'raw',
    '-c', 'write -P 0xab 1M 64k',
    '-c', 'write -P 0xcd 5000 3000', // unaligned: read-modify-write of two pages
    '-c', 'write -z 3M 1M', // NO_HOLE: allocated zeros
    '-c', 'write -z -u 12M 512k', // may unmap: ZERO pages
    '-c', 'discard 8M 64k',
    '-c', 'flush',
    s.uri,
  ])
  patch(expected, MiB, Buffer.alloc(64 * 1024, 0xab))
  patch(expected, 5000, Buffer.alloc(3000, 0xcd))
  patch(expected, 3 * MiB, Buffer.alloc(MiB))
  patch(expected, 12 * MiB, Buffer.alloc(MiB / 2))
  patch(expected, 8 * MiB, Buffer.alloc(64 * 1024))
  await execFileAsync('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'raw', expected, s.uri]) // exits 1 on a difference
  t.ok((await storeBytes(s.store)).equals(readFileSync(expected)), 'the library sees what the client wrote')
  const states = new Map([...s.store.extents()].map((e) => [e.start, e.state]))
  t.equal(states.get(3 * MiB), 'data', 'NO_HOLE zeros are allocated')
  t.equal(states.get(12 * MiB), 'zero', 'write -z -u makes ZERO pages')
  t.equal(states.get(8 * MiB), 'zero', 'TRIM makes ZERO pages')
})

t.test('nbdinfo --map agrees with the store extents', async (t) => {
  if (!haveTools(t, ['nbdinfo'])) return
  const s = await serveStore(t, { prepare: mixedWrites })
  const { stdout } = await execFileAsync('nbdinfo', ['--map', '--json', s.uri])
  const map = JSON.parse(stdout) as Array<{ offset: number; length: number; type: number }>
  const fromNbd = normaliseMap(map.map((e) => ({ start: e.offset, length: e.length, flags: e.type })))
  const fromStore = normaliseMap([...s.store.extents()].map((e) => ({ start: e.start, length: e.length, flags: stateFlags(e.state) })))
  t.same(fromNbd, fromStore)
  t.ok(fromStore.some((e) => e.endsWith(':2')), 'ZERO pages report the zero flag')
  t.ok(fromStore.some((e) => e.endsWith(':3')), 'lower holes report hole and zero')
  t.ok(fromStore.some((e) => e.endsWith(':0')), 'data reports neither')
})

t.test('nbdinfo shows the advertised flags and block size constraints', async (t) => {
  if (!haveTools(t, ['nbdinfo'])) return
  const s = await serveStore(t, { pageSize: 8192, server: { exportName: 'disk', description: 'test disk' } })
  const { stdout } = await execFileAsync('nbdinfo', ['--json', s.uri])
  const info = JSON.parse(stdout) as { structured: boolean; exports: Array<Record<string, unknown>> }
  t.equal(info.structured, true)
  const exp = info.exports[0] ?? {}
  t.match(exp, {
    'export-name': 'disk',
    description: 'test disk',
    'export-size': LOWER_SIZE,
    is_read_only: false,
    can_flush: true,
    can_fua: true,
    can_trim: true,
    can_zero: true,
    can_fast_zero: true,
    can_multi_conn: true,
    can_cache: true,
    can_df: true,
    block_size_minimum: 1,
    block_size_preferred: 8192,
    block_size_maximum: 32 * MiB,
  })
  t.same(exp.contexts, ['base:allocation'])
})

t.test('a read-only export says so and refuses writes with EPERM', async (t) => {
  if (!haveTools(t, ['nbdinfo', 'qemu-io'])) return
  const s = await serveStore(t, { server: { readOnly: true } })
  const { stdout } = await execFileAsync('nbdinfo', ['--json', s.uri])
  t.match(JSON.parse(stdout).exports[0], { is_read_only: true, can_trim: false, can_zero: false, can_fua: false })
  const before = await storeBytes(s.store)
  const raw = await RawClient.connect(s.socket)
  t.teardown(() => raw.destroy())
  await raw.start()
  await raw.go()
  raw.request(NBD_CMD_WRITE, 0, 4096, { data: Buffer.alloc(4096, 1) })
  t.equal((await raw.reply()).errno, 1, 'EPERM')
  t.ok((await storeBytes(s.store)).equals(before), 'nothing changed')
})

t.test('nbdcopy into and out of the export', async (t) => {
  if (!haveTools(t, ['nbdcopy'])) return
  const s = await serveStore(t)
  const rng = new Random(11)
  const source = Buffer.alloc(LOWER_SIZE)
  for (let i = 0; i < 24; i++) rng.bytes(64 * 1024).copy(source, rng.int(0, LOWER_SIZE / 4096 - 16) * 4096)
  const sourcePath = join(s.dir, 'source.img')
  writeFileSync(sourcePath, source)
  await execFileAsync('nbdcopy', [sourcePath, s.uri]) // several connections at once (CAN_MULTI_CONN)
  t.ok((await storeBytes(s.store)).equals(source), 'the store holds the copied image')
  const outPath = join(s.dir, 'out.img')
  await execFileAsync('nbdcopy', [s.uri, outPath])
  t.ok(readFileSync(outPath).equals(source), 'and gives it back')
  await execFileAsync('nbdcopy', [s.uri, 'null:'])
  t.pass('nbdcopy to null: reads the whole export')
})

t.test('several connections see one content', async (t) => {
  if (!haveTools(t, ['qemu-io'])) return
  const s = await serveStore(t)
  const watcher = await RawClient.connect(s.socket)
  t.teardown(() => watcher.destroy())
  await watcher.start()
  await watcher.go()
  await execFileAsync('qemu-io', ['-f', 'raw', '-c', 'write -P 0x5a 2M 8k', s.uri])
  const seen = await watcher.read(2 * MiB, 8192)
  t.equal(seen.errno, 0)
  t.ok(seen.data.equals(Buffer.alloc(8192, 0x5a)), 'a connection opened before the write reads it')
  watcher.request(NBD_CMD_WRITE, 2 * MiB + 4096, 4, { data: Buffer.from('abcd') })
  t.equal((await watcher.reply()).errno, 0)
  const { stdout } = await execFileAsync('qemu-io', ['-f', 'raw', '-c', `read -v ${2 * MiB + 4096} 4`, s.uri])
  t.match(stdout, /61 62 63 64/, 'and the other way round')
  watcher.request(NBD_CMD_READ, 0, 1)
  t.equal((await watcher.reply()).errno, 0, 'the watcher is still served')
})
