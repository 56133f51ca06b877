// Chains against the real thing: the same writes and zeroes on a qcow2 backing chain (4 KiB
// clusters, `qemu-img create -b`) and on a pagecow chain (4 KiB pages) over the same raw image;
// then `qemu-img compare` of pagecow's export with the qcow2 top, and both maps, layer by layer.
import { execFileSync } from 'node:child_process'
import t from 'tap'
import { ImageStore } from '../lib/index.js'
import { runCli } from './fixtures/cli-io.js'
import { makeSparseLower } from './fixtures/cli-lower.js'
import { haveTools } from './fixtures/nbd-served.js'
import { Random } from './fixtures/random.js'

const P = 4096
const SIZE = 256 * P

interface MapEntry {
  start: number
  length: number
  depth: number
  zero: boolean
  data: boolean
}

/** One line per page: "depth zero data"; offsets left out (qcow2 stores clusters elsewhere). */
function perPage(entries: MapEntry[]): string[] {
  const pages: string[] = []
  for (const e of entries) for (let p = e.start / P; p < (e.start + e.length) / P; p++) pages[p] = `page ${p}: depth ${e.depth} zero ${e.zero} data ${e.data}`
  return pages
}

type Op = { kind: 'write'; offset: number; length: number; byte: number } | { kind: 'zero'; offset: number; length: number }

function randomOps(rng: Random, n: number): Op[] {
  const ops: Op[] = []
  for (let i = 0; i < n; i++) {
    const offset = rng.int(0, SIZE / P - 4) * P + (rng.chance(0.3) ? rng.int(1, P) : 0)
    if (rng.chance(0.7)) ops.push({ kind: 'write', offset, length: rng.int(1, 3 * P), byte: rng.int(1, 256) })
    // Whole pages: a ZERO page here, a zero cluster there (a partial one is a data write on both).
    else ops.push({ kind: 'zero', offset: Math.floor(offset / P) * P, length: rng.int(1, 4) * P })
  }
  return ops
}

t.test('a three-layer chain reads and maps as the same qcow2 chain does', async (t) => {
  if (!haveTools(t, ['qemu-img', 'qemu-io'])) return
  const dir = t.testdir()
  const raw = `${dir}/raw.img`
  makeSparseLower(raw, SIZE, [
    [8 * P, 16 * P],
    [100 * P + 100, 3 * P],
    [200 * P, 40 * P],
  ])
  const rng = new Random(0x9e3)
  const layers = ['mid', 'top']
  let qcowBelow = raw
  let qcowFormat = 'raw'
  let storeBelow = raw
  for (const name of layers) {
    const qcow = `${dir}/${name}.qcow2`
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', `cluster_size=${P}`, '-b', qcowBelow, '-F', qcowFormat, qcow])
    const store = await ImageStore.create(`${dir}/${name}.cow`, { lower: storeBelow, autoFlushMs: 0 })
    const ops = randomOps(rng, 30)
    const commands: string[] = []
    for (const op of ops) {
      if (op.kind === 'write') {
        await store.write(op.offset, Buffer.alloc(op.length, op.byte))
        commands.push('-c', `write -P ${op.byte} ${op.offset} ${op.length}`)
      } else {
        await store.zero(op.offset, op.length)
        commands.push('-c', `write -z ${op.offset} ${op.length}`)
      }
    }
    execFileSync('qemu-io', ['-f', 'qcow2', ...commands, qcow], { stdio: 'ignore' })
    await store.close()
    qcowBelow = qcow
    qcowFormat = 'qcow2'
    storeBelow = `${dir}/${name}.cow`
  }

  const exported = `${dir}/top.img`
  const e = await runCli(['export', `${dir}/top.cow`, exported])
  t.equal(e.code, 0, e.stderr)
  const compare = execFileSync('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', `${dir}/top.qcow2`, exported], { encoding: 'utf8' })
  t.match(compare, /Images are identical/, 'qemu-img compare: the export of the pagecow chain is the qcow2 chain, byte for byte')

  const ours = JSON.parse((await runCli(['map', `${dir}/top.cow`, '--output=json'])).stdout) as MapEntry[]
  const qemu = JSON.parse(execFileSync('qemu-img', ['map', '--output=json', `${dir}/top.qcow2`], { encoding: 'utf8' })) as MapEntry[]
  t.same(perPage(ours), perPage(qemu), 'the same depth, zero and data for every page as qemu-img map of the qcow2 chain')
  t.same(new Set(ours.map((m) => m.depth)), new Set([0, 1, 2]), 'every depth appears')

  const info = JSON.parse((await runCli(['info', `${dir}/top.cow`, '--json'])).stdout) as Array<{ path: string; format: string; backing: string | null }>
  const qemuInfo = JSON.parse(execFileSync('qemu-img', ['info', '--backing-chain', '--output=json', `${dir}/top.qcow2`], { encoding: 'utf8' })) as Array<{ format: string }>
  t.equal(info.length, qemuInfo.length, 'info lists as many layers as qemu-img info --backing-chain')
  t.same(
    info.map((l) => l.format),
    qemuInfo.map((l) => (l.format === 'qcow2' ? 'pagecow' : l.format)),
    'the same formats, top first',
  )
})
