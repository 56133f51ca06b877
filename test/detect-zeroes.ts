// detect-zeroes (issue 13): writes of whole pages of zeros become ZERO pages, as qemu's drive
// option of that name makes them zero clusters. The same writes go to a pagecow store and to a
// qcow2 with 4 KiB clusters over the same base (qemu-io, same mode); their maps and bytes must
// agree. Then what qemu does not define: pages within one request, and the space kept or given.
import { execFileSync } from 'node:child_process'
import * as nodeFs from 'node:fs'
import t from 'tap'
import { checkStore, ImageStore, TreeStore } from '../lib/index.js'
import { runCli } from './fixtures/cli-io.js'
import { haveTools, shortTempDir } from './fixtures/nbd-served.js'
import { exitCode, serve } from './fixtures/pagecow-serve.js'
import { Random } from './fixtures/random.js'

const P = 4096
const SIZE = 64 * P

type Mode = 'off' | 'on' | 'unmap'

/** [offset, length, byte]: whole requests, each all one byte (0: zeros), page-aligned or not. */
function workload(seed: number): Array<[number, number, number]> {
  const random = new Random(seed)
  const out: Array<[number, number, number]> = []
  for (let i = 0; i < 40; i++) {
    const page = random.int(0, 60)
    const pages = random.int(1, 4)
    out.push([page * P, pages * P, random.chance(0.5) ? 0 : random.int(1, 255)])
  }
  return out
}

interface MapEntry {
  start: number
  length: number
  depth: number
  zero: boolean
  data: boolean
}

/** The extents without host offsets, neighbours with the same flags merged (qemu splits where its clusters lie apart). */
function simplify(entries: MapEntry[]): MapEntry[] {
  const out: MapEntry[] = []
  for (const e of entries) {
    const last = out.at(-1)
    if (last && last.start + last.length === e.start && last.depth === e.depth && last.zero === e.zero && last.data === e.data) last.length += e.length
    else out.push({ start: e.start, length: e.length, depth: e.depth, zero: e.zero, data: e.data })
  }
  return out
}

if (haveTools(t, ['qemu-img', 'qemu-io'])) {
  for (const mode of ['off', 'on', 'unmap'] as const) {
    t.test(`detect-zeroes=${mode}: the same map and bytes as a qcow2 written by qemu-io with detect-zeroes=${mode}`, async (t) => {
      const dir = t.testdir()
      const base = Buffer.alloc(SIZE)
      for (let i = 0; i < SIZE; i++) base[i] = (i * 31 + 7) & 0xff
      nodeFs.writeFileSync(`${dir}/base.raw`, base)
      execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4096', '-b', `${dir}/base.raw`, '-F', 'raw', `${dir}/top.qcow2`])
      const store = await ImageStore.create(`${dir}/store`, { lower: `${dir}/base.raw`, autoFlushMs: 0, detectZeroes: mode })
      const commands: string[] = []
      for (const [offset, length, byte] of workload(mode.length)) {
        await store.write(offset, Buffer.alloc(length, byte))
        commands.push('-c', `write -P ${byte} ${offset} ${length}`)
      }
      await store.close()
      execFileSync('qemu-io', ['--image-opts', `driver=qcow2,file.filename=${dir}/top.qcow2,detect-zeroes=${mode}`, ...commands], { stdio: 'ignore' })

      const qemu = JSON.parse(execFileSync('qemu-img', ['map', '--output=json', `${dir}/top.qcow2`], { encoding: 'utf8' })) as MapEntry[]
      const ours = await runCli(['map', `${dir}/store`, '--output=json'])
      t.equal(ours.code, 0, ours.stderr)
      t.same(simplify(JSON.parse(ours.stdout) as MapEntry[]), simplify(qemu), 'the same extents: depth, zero and data flags as qemu-img map')
      execFileSync('qemu-img', ['convert', '-O', 'raw', `${dir}/top.qcow2`, `${dir}/qemu.raw`])
      const check = await ImageStore.open(`${dir}/store`, { readOnly: true })
      t.ok((await check.read(0, SIZE)).equals(nodeFs.readFileSync(`${dir}/qemu.raw`)), 'the same bytes')
      await check.close()
    })
  }
}

t.test('pages within one request, and the space each mode keeps', async (t) => {
  const dir = t.testdir()
  nodeFs.writeFileSync(`${dir}/lower.img`, Buffer.alloc(16 * P, 0x11))
  const used: Record<Mode, number> = { off: 0, on: 0, unmap: 0 }
  for (const mode of ['off', 'on', 'unmap'] as const) {
    const store = await ImageStore.create(`${dir}/store-${mode}`, { lower: `${dir}/lower.img`, autoFlushMs: 0, detectZeroes: mode })
    await store.write(0, Buffer.alloc(8 * P, 0x22)) // DATA first
    // One request: a partial page of data, two zero pages, a data page, zero pages to past the end.
    const data = Buffer.alloc(10 * P - 100)
    data.fill(0x33, 0, P - 100)
    data.fill(0x44, 3 * P - 100, 4 * P - 100)
    await store.write(100 + 4 * P, data)
    const expected = Buffer.alloc(16 * P, 0x11)
    expected.fill(0x22, 0, 8 * P)
    data.copy(expected, 4 * P + 100)
    t.ok((await store.read(0, store.size)).equals(expected), `${mode}: reads the bytes written`)
    const states = [...store.extents()].map((e) => [e.start / P, e.length / P, e.state])
    if (mode === 'off') t.same(states, [[0, 14, 'data'], [14, 2, 'lower']], 'off: every page written is DATA')
    else t.same(states, [[0, 5, 'data'], [5, 2, 'zero'], [7, 1, 'data'], [8, 6, 'zero'], [14, 2, 'lower']], `${mode}: the whole zero pages are ZERO, the partial one and the data pages DATA`)
    await store.close()
    used[mode] = nodeFs.statSync(`${dir}/store-${mode}/upper.img`).blocks * 512
    const report = await checkStore(`${dir}/store-${mode}`)
    t.ok(report.clean, `${mode}: fsck clean`, { problems: report.problems })
  }
  t.ok(used.unmap < used.on, `unmap gives the zeroed DATA pages' space back (${used.unmap} bytes), on keeps it (${used.on})`)
  t.ok(used.on < used.off, `on writes nothing for the pages that were not DATA (${used.on} against ${used.off} bytes)`)
})

t.test('a tree store, and through the CLI', async (t) => {
  const dir = t.testdir({ lower: { f: Buffer.alloc(4 * P, 'f') } })
  const store = await TreeStore.create(`${dir}/store`, { lower: `${dir}/lower`, autoFlushMs: 0, detectZeroes: 'unmap' })
  const h = await store.open('/f', 'r+')
  await h.write(P, Buffer.alloc(2 * P))
  await h.close()
  t.same(
    [...store.extents('/f')].map((e) => [e.start / P, e.length / P, e.state]),
    [
      [0, 1, 'lower'],
      [1, 2, 'zero'],
      [3, 1, 'lower'],
    ],
    'a tree file: zero pages written are ZERO',
  )
  await store.close()
  const bad = await runCli(['serve', `${dir}/store`, '--detect-zeroes', 'maybe'])
  t.equal(bad.code, 2, 'serve --detect-zeroes maybe: a usage error')
  t.match(bad.stderr, /must be off, on or unmap/)
  await t.rejects(ImageStore.open(`${dir}/none`, { detectZeroes: 'yes' as never }), { code: 'EINVAL' }, 'the library refuses another value')
})

if (haveTools(t, ['qemu-io'])) {
  t.test('pagecow serve --detect-zeroes unmap: zeros a client writes over NBD become ZERO pages', async (t) => {
    const dir = t.testdir()
    nodeFs.writeFileSync(`${dir}/lower.img`, Buffer.alloc(16 * P, 0x11))
    await (await ImageStore.create(`${dir}/store`, { lower: `${dir}/lower.img`, autoFlushMs: 0 })).close()
    const socket = `${shortTempDir(t)}/nbd.sock`
    const served = await serve(t, [`${dir}/store`, '--socket', socket, '--detect-zeroes', 'unmap'])
    execFileSync('qemu-io', ['-f', 'raw', `nbd+unix:///?socket=${socket}`, '-c', `write -P 7 0 ${4 * P}`, '-c', `write -P 0 ${P} ${2 * P}`], { stdio: 'ignore' })
    served.child.kill('SIGTERM')
    t.equal(await exitCode(served.child), 0, `the server stops cleanly: ${served.stderr()}`)
    const store = await ImageStore.open(`${dir}/store`, { readOnly: true })
    t.same(
      [...store.extents(0, 4 * P)].map((e) => [e.start / P, e.length / P, e.state]),
      [
        [0, 1, 'data'],
        [1, 2, 'zero'],
        [3, 1, 'data'],
      ],
      'the zero pages written through the server are ZERO',
    )
    await store.close()
  })
}
