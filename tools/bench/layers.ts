// Layers (issue 13): random 4 KiB reads through a chain of 8 stores against the same reads on one
// store holding the same pages (target ≥ 0.8×), interleaved in batches; then the same reads with
// qemu-io on an equivalent qcow2 chain (4 KiB clusters) and on one qcow2, start-up subtracted; and
// the map of the chain, pagecow's extentsByLayer() against `qemu-img map` of the qcow2 chain.
import { haveQemu, run } from './qemu.js'
import { join } from 'node:path'
import { ImageStore } from '../../lib/index.js'
import type { BenchCase } from './bench-case.js'
import { count, duration } from './format.js'
import { randomPages, randomSubset } from './random.js'
import { throughputRow, type Row } from './row.js'
import { removeScratch, scratchDir } from './scratch.js'
import { interleaved, interleavedReps, median, msSince, now } from './timing.js'

const LAYERS = 8
/** Each layer writes this fraction of the pages, scattered (layers overlap). */
const LAYER_FRACTION = 1 / 16
const READS_PER_BATCH = 250
const EMPTY_RUNS = 3

export const layersRead: BenchCase = {
  id: 'layers-read',
  group: 'layers',
  number: 13,
  title: `Random 4 KiB reads through a chain of ${LAYERS} stores vs one store with the same pages; qemu-io on the same qcow2 chain`,
  async run(ctx) {
    const { lowerBytes, pageSize, randomReads, reps } = ctx.config
    const lower = ctx.dataLower()
    const pages = lowerBytes / pageSize
    const scratch = scratchDir('layers')
    const rows: Row[] = []
    const opened: ImageStore[] = []
    try {
      // The chain, and one store that got every layer's writes in the same order.
      const single = await ImageStore.create(join(scratch, 'single'), { lower, autoFlushMs: 0 })
      const writes: Uint32Array[] = []
      let below = lower
      const start = now()
      for (let i = 0; i < LAYERS; i++) {
        const path = join(scratch, `layer${i}`)
        const store = await ImageStore.create(path, { lower: below, autoFlushMs: 0 })
        const chosen = randomSubset(pages, LAYER_FRACTION, 100 + i)
        const data = Buffer.alloc(pageSize, 0x10 + i)
        for (const p of chosen) {
          await store.write(p * pageSize, data)
          await single.write(p * pageSize, data)
        }
        writes.push(chosen)
        await store.close()
        below = path
      }
      await single.flush()
      ctx.log(`chain of ${LAYERS} stores, ${count(writes[0]!.length)} pages written in each, built in ${duration(msSince(start))}`)
      const top = await ImageStore.open(below, { autoFlushMs: 0 })
      opened.push(top, single)

      const reads = randomPages(randomReads, pages, 13)
      const a = Buffer.allocUnsafe(pageSize)
      const b = Buffer.allocUnsafe(pageSize)
      for (const p of reads.subarray(0, 1000)) {
        top.readIntoSync(a, p * pageSize)
        single.readIntoSync(b, p * pageSize)
        if (!a.equals(b)) throw new Error(`layers-read: the chain and the single store disagree at page ${p}`)
      }
      const batches = Math.ceil(randomReads / READS_PER_BATCH)
      const slice = (i: number) => reads.subarray(i * READS_PER_BATCH, (i + 1) * READS_PER_BATCH)
      const viaChain = (i: number) => {
        for (const p of slice(i)) top.readIntoSync(a, p * pageSize)
      }
      const viaSingle = (i: number) => {
        for (const p of slice(i)) single.readIntoSync(a, p * pageSize)
      }
      await interleaved(batches, viaChain, viaSingle) // warm-up: JIT, page cache
      const got = await interleavedReps(reps, () => interleaved(batches, viaChain, viaSingle))
      rows.push(
        throughputRow({
          case: 'layers-read', label: `readIntoSync(), ${count(randomReads)} random reads, ${LAYERS}-store chain vs one store with the same pages, warm`,
          work: randomReads, unit: 'ops', pagecowMs: got.a, baselineMs: got.b, baselineName: 'one store', atLeast: 0.8,
        }),
      )

      // The map of the whole chain (every layer's extents), as qemu-img map prints a chain's.
      const mapMs: number[] = []
      let extents = 0
      for (let r = 0; r < reps; r++) {
        const t0 = now()
        extents = 0
        for (const _ of top.extentsByLayer()) extents++
        mapMs.push(msSince(t0))
      }

      if (!haveQemu()) {
        rows.push({ case: 'layers-read', label: 'qemu side skipped: qemu-io / qemu-img not installed (Debian: qemu-utils)', pagecow: '', baseline: '', ratio: null, ratioKind: null, ratioRange: null, target: null, met: null, details: {} })
        return rows
      }
      // The same chain in qcow2 (4 KiB clusters), and one qcow2 with every write.
      let qBelow = lower
      let qFormat = 'raw'
      const oneQcow = join(scratch, 'single.qcow2')
      run('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', `cluster_size=${pageSize}`, '-b', lower, '-F', 'raw', oneQcow])
      let allWrites = ''
      for (let i = 0; i < LAYERS; i++) {
        const qcow = join(scratch, `layer${i}.qcow2`)
        run('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', `cluster_size=${pageSize}`, '-b', qBelow, '-F', qFormat, qcow])
        const script = Array.from(writes[i]!, (p) => `write -q -P ${0x10 + i} ${p * pageSize} ${pageSize}\n`).join('')
        run('qemu-io', ['-t', 'unsafe', '-f', 'qcow2', qcow], script)
        allWrites += script
        qBelow = qcow
        qFormat = 'qcow2'
      }
      run('qemu-io', ['-t', 'unsafe', '-f', 'qcow2', oneQcow], allWrites)
      const readScript = Array.from(reads, (p) => `read -q ${p * pageSize} ${pageSize}\n`).join('')
      const qemuReads = (image: string) => {
        const startup = median(Array.from({ length: EMPTY_RUNS }, () => timed(() => run('qemu-io', ['-r', '-f', 'qcow2', image], ''))))
        return { ms: timed(() => run('qemu-io', ['-r', '-f', 'qcow2', image], readScript)) - startup, startup }
      }
      const qChain: number[] = []
      const qOne: number[] = []
      const pcChain: number[] = []
      for (let r = 0; r < reps; r++) {
        qemuReads(qBelow) // warm: the chain's files in the page cache
        qChain.push(qemuReads(qBelow).ms)
        qOne.push(qemuReads(oneQcow).ms)
        const t0 = now()
        for (const p of reads) top.readIntoSync(a, p * pageSize)
        pcChain.push(msSince(t0))
      }
      const qemuRatio = median(qOne) / median(qChain)
      rows.push(
        throughputRow({
          case: 'layers-read', label: `${count(randomReads)} random reads through the ${LAYERS}-layer chain, pagecow vs qemu-io on the qcow2 chain (4 KiB clusters; qemu's own chain vs one qcow2: ${qemuRatio.toFixed(2)}×)`,
          work: randomReads, unit: 'ops', pagecowMs: pcChain, baselineMs: qChain, baselineName: `qemu-io, ${LAYERS} qcow2 layers`,
          details: { qemuChainMs: qChain, qemuOneMs: qOne, qemuChainVsOne: qemuRatio },
        }),
      )
      const qemuMapMs: number[] = []
      for (let r = 0; r < reps; r++) qemuMapMs.push(timed(() => run('qemu-img', ['map', '--output=json', qBelow])))
      const pc = median(mapMs)
      const qm = median(qemuMapMs)
      rows.push({
        case: 'layers-read', label: `map of the ${LAYERS}-layer chain (${count(extents)} extents): extentsByLayer() vs qemu-img map --output=json of the qcow2 chain (a process, JSON included)`,
        pagecow: duration(pc), baseline: `${duration(qm)} (qemu-img map)`, ratio: pc / qm, ratioKind: 'time', ratioRange: null, target: null, met: null,
        details: { pagecowMs: mapMs, qemuMs: qemuMapMs, extents },
      })
      return rows
    } finally {
      for (const s of opened) await s.close()
      removeScratch(scratch)
    }
  },
}

function timed(fn: () => unknown): number {
  const t0 = now()
  fn()
  return msSince(t0)
}

