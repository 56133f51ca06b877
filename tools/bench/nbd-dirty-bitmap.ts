// The dirty-bitmap query over NBD (issue 12): `nbdinfo --map=qemu:dirty-bitmap:b` of a 1 TiB image
// with 10 pages changed since the mark, against pagecow's NBD server and qemu-nbd exporting a
// qcow2's persistent bitmap (`qemu-nbd -B b`, the peer qemu users have). nbdinfo asks in pieces
// of at most 4 GiB (request lengths are 32 bits), so both servers answer the same hundreds of
// BLOCK_STATUS requests: the gap is the cost per request (pagecow reads only the change records
// of each range, never the image). Each
// repetition spawns nbdinfo (its start-up is in both sides' times alike).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { closeSync, existsSync, ftruncateSync, openSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ImageStore } from '../../lib/index.js'
import type { BenchCase } from './bench-case.js'
import { duration } from './format.js'
import { have } from './nbd-peers.js'
import { pairRatios, range, type Row } from './row.js'
import { removeScratch, scratchDir } from './scratch.js'
import { median, msSince, now, paired } from './timing.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const TIB = 2 ** 40
const PAGE = 4096
const CHANGED = 10

export const nbdDirtyBitmap: BenchCase = {
  id: 'nbd-dirty-bitmap',
  group: 'nbd-dirty-bitmap',
  number: 19,
  title: 'nbdinfo --map=qemu:dirty-bitmap of a 1 TiB image with 10 changed pages: pagecow against qemu-nbd -B (qcow2 persistent bitmap)',
  async run(ctx) {
    const missing = ['nbdinfo', 'qemu-img', 'qemu-io', 'qemu-nbd'].filter((tool) => !have(tool))
    if (missing.length > 0) return [skippedRow(`skipped: ${missing.join(', ')} not installed (Debian: qemu-utils libnbd-bin)`)]
    const reps = ctx.config.quick ? 5 : 11
    const scratch = scratchDir('nbd-dirty-bitmap')
    const servers: ChildProcess[] = []
    try {
      // The same 10 pages, far apart, on every side.
      const offsets = Array.from({ length: CHANGED }, (_, i) => Math.floor(((i + 0.5) * (TIB / CHANGED)) / PAGE / 16) * 16 * PAGE)
      const big = await pagecowServer(scratch, 'tib', TIB, offsets, servers)
      const qemu = await qemuServer(scratch, offsets, servers)
      const map = (uri: string) => async () => {
        const start = now()
        const out = spawnSync('nbdinfo', ['--map=qemu:dirty-bitmap:b', uri], { encoding: 'utf8' })
        const ms = msSince(start)
        const dirty = out.stdout.split('\n').filter((l) => l.trim().endsWith('dirty')).length
        if (out.status !== 0 || dirty !== CHANGED) throw new Error(`nbd-dirty-bitmap: ${uri} gave ${dirty} dirty extents: ${out.stderr}`)
        return ms
      }
      const vsQemu = await paired(reps, map(big), map(qemu))
      ctx.log(`nbd-dirty-bitmap: pagecow ${vsQemu.a.map((x) => x.toFixed(1)).join(' ')} ms; qemu-nbd ${vsQemu.b.map((x) => x.toFixed(1)).join(' ')} ms`)
      return [timeRow('1 TiB image, 10 changed pages: pagecow (NbdServer) vs qemu-nbd -B over a qcow2 with a persistent bitmap', vsQemu.a, vsQemu.b, 'qemu-nbd')]
    } finally {
      for (const child of servers) child.kill('SIGTERM')
      await Promise.all(servers.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : undefined)))
      removeScratch(scratch)
    }
  },
}

/** A store over a sparse lower of `size` bytes, mark `b`, the pages at `offsets` written after it, served by tools/bench/nbd-serve.ts. */
async function pagecowServer(scratch: string, tag: string, size: number, offsets: number[], servers: ChildProcess[]): Promise<string> {
  const lower = join(scratch, `${tag}.img`)
  const fd = openSync(lower, 'w')
  ftruncateSync(fd, size)
  closeSync(fd)
  const dir = join(scratch, `${tag}.cow`)
  const store = await ImageStore.create(dir, { lower, pageSize: PAGE, autoFlushMs: 0 })
  await store.mark('b')
  for (const o of offsets) await store.write(o, Buffer.alloc(PAGE, 1))
  await store.close()
  const socket = join(scratch, `${tag}.sock`)
  await listen(process.execPath, ['--import', 'tsx', join(ROOT, 'tools/bench/nbd-serve.ts'), dir, '--socket', socket], socket, servers)
  return `nbd+unix:///?socket=${socket}`
}

/** A 1 TiB qcow2 with the persistent bitmap `b`, the pages at `offsets` written by qemu-io, exported by qemu-nbd -B b. */
async function qemuServer(scratch: string, offsets: number[], servers: ChildProcess[]): Promise<string> {
  const image = join(scratch, 'tib.qcow2')
  const run = (cmd: string, args: string[]) => {
    const r = spawnSync(cmd, args, { encoding: 'utf8' })
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`)
  }
  run('qemu-img', ['create', '-q', '-f', 'qcow2', image, String(TIB)])
  run('qemu-img', ['bitmap', '--add', image, 'b'])
  run('qemu-io', ['-f', 'qcow2', ...offsets.flatMap((o) => ['-c', `write -P 1 ${o} ${PAGE}`]), image])
  const socket = join(scratch, 'qemu.sock')
  await listen('qemu-nbd', ['-f', 'qcow2', '-k', socket, '-t', '-r', '-B', 'b', image], socket, servers)
  return `nbd+unix:///?socket=${socket}`
}

async function listen(cmd: string, args: string[], socket: string, servers: ChildProcess[]): Promise<void> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] })
  servers.push(child)
  const deadline = Date.now() + 60_000
  while (!existsSync(socket)) {
    if (child.exitCode !== null) throw new Error(`${cmd} exited ${child.exitCode}`)
    if (Date.now() > deadline) throw new Error(`${cmd} did not listen on ${socket} in 60 s`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

function timeRow(label: string, pagecowMs: number[], baselineMs: number[], baselineName: string): Row {
  const ratios = pairRatios(pagecowMs, baselineMs)
  return {
    case: 'nbd-dirty-bitmap',
    label: `${label}; median of ${pagecowMs.length}, nbdinfo start-up included`,
    pagecow: duration(median(pagecowMs)),
    baseline: `${duration(median(baselineMs))} (${baselineName})`,
    ratio: median(ratios),
    ratioKind: 'time',
    ratioRange: range(ratios),
    target: null,
    met: null,
    details: { pagecowMs, baselineMs },
  }
}

function skippedRow(label: string): Row {
  return { case: 'nbd-dirty-bitmap', label, pagecow: '', baseline: '', ratio: null, ratioKind: null, ratioRange: null, target: null, met: null, details: {} }
}
