// Marks as NBD dirty bitmaps, read by the real clients: nbdinfo's map of qemu:dirty-bitmap:NAME and
// qemu-img's (x-dirty-bitmap) equal the library's changes since each mark, against NbdServer and
// `pagecow serve`; and the README's "back up a running VM" recipe, run as written.
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { ImageStore } from '../lib/index.js'
import { runCli } from './fixtures/cli-io.js'
import { dirtyMapOf, execFileAsync, haveTools, makeImageStore, normaliseMap, serveStore, shortTempDir, LOWER_SIZE } from './fixtures/nbd-served.js'
import { exitCode, serve } from './fixtures/pagecow-serve.js'
import { Random, testSeeds } from './fixtures/random.js'

const P = 4096

interface NbdinfoExtent {
  offset: number
  length: number
  type: number
  description: string
}

/** `nbdinfo --map=CONTEXT --json URI`, as a normalised map. */
async function nbdinfoMap(uri: string, context: string): Promise<string[]> {
  const { stdout } = await execFileAsync('nbdinfo', [`--map=${context}`, '--json', uri])
  const extents = JSON.parse(stdout) as NbdinfoExtent[]
  for (const e of extents) if (e.description !== (e.type === 1 ? 'dirty' : 'clean')) throw new Error(`nbdinfo says ${JSON.stringify(e)}`)
  return normaliseMap(extents.map((e) => ({ start: e.offset, length: e.length, flags: e.type })))
}

/**
 * qemu-img's map of a remote dirty bitmap (how qemu-based backup tools read one): with
 * x-dirty-bitmap qemu reads the bitmap's flags as base:allocation's, so dirty shows as
 * `"data": false` and clean as `"data": true`.
 */
async function qemuImgMap(socket: string, exportName: string, context: string): Promise<string[]> {
  const opts = `driver=nbd,server.type=unix,server.path=${socket},export=${exportName},x-dirty-bitmap=${context}`
  const { stdout } = await execFileAsync('qemu-img', ['map', '--output=json', '--image-opts', opts])
  const extents = JSON.parse(stdout) as Array<{ start: number; length: number; data: boolean }>
  return normaliseMap(extents.map((e) => ({ start: e.start, length: e.length, flags: e.data ? 0 : 1 })))
}

for (const seed of testSeeds([11, 12])) {
  t.test(`NbdServer: nbdinfo and qemu-img read each mark's bitmap as the library's changes (seed ${seed})`, async (t) => {
    if (!haveTools(t, ['nbdinfo', 'qemu-img'])) return
    const rng = new Random(seed)
    const s = await serveStore(t, { server: { exportName: 'vm' } })
    const store = s.store
    const marks: string[] = []
    let checks = 0
    for (let step = 0; step < 60; step++) {
      const op = rng.int(0, 100)
      const size = store.size
      const offset = rng.int(0, size)
      const length = rng.int(1, 6 * P)
      if (op < 40) await store.write(offset, Buffer.alloc(Math.min(length, size - offset), rng.int(1, 256)))
      else if (op < 50) await store.zero(offset, Math.min(length, size - offset))
      else if (op < 58) await store.discard(offset, Math.min(length, size - offset))
      else if (op < 62) {
        // Shrink and grow back: the cut pages are changed, and read zeros again.
        const to = rng.int(size - 64 * P, size)
        await store.truncate(to)
        await store.truncate(LOWER_SIZE)
      } else if (op < 70) await store.flush()
      else if (op < 80 || marks.length === 0) {
        const name = `m${step}.${rng.int(0, 100)}`
        await store.mark(name)
        marks.push(name)
      } else if (op < 84 && marks.length > 1) {
        await store.unmark(marks.splice(rng.int(0, marks.length), 1)[0]!)
      } else {
        const name = marks[rng.int(0, marks.length)]!
        const context = `qemu:dirty-bitmap:${name}`
        const want = dirtyMapOf(store, name, store.size)
        t.same(await nbdinfoMap(s.uri, context), want, `step ${step}: nbdinfo --map=${context}`)
        if (rng.chance(0.3)) t.same(await qemuImgMap(s.socket, 'vm', context), want, `step ${step}: qemu-img map x-dirty-bitmap=${context}`)
        checks++
      }
    }
    t.ok(checks > 3, `${checks} maps checked`)
    // Every mark listed, and --totals agrees with the library's changed bytes.
    const { stdout } = await execFileAsync('nbdinfo', ['--list', '--json', s.uri])
    const listed = (JSON.parse(stdout) as { exports: Array<{ contexts: string[] }> }).exports[0]!.contexts
    t.same(listed, ['base:allocation', ...marks.map((m) => `qemu:dirty-bitmap:${m}`)], 'nbdinfo --list shows base:allocation and every mark')
    for (const name of marks) {
      const totals = await execFileAsync('nbdinfo', [`--map=qemu:dirty-bitmap:${name}`, '--totals', '--json', s.uri])
      const dirty = (JSON.parse(totals.stdout) as Array<{ size: number; type: number }>).find((e) => e.type === 1)?.size ?? 0
      let changed = 0
      for (const e of store.changedExtents(name, 0, store.size)) changed += e.length
      t.equal(dirty, changed, `--totals: the dirty bytes since ${name} are the changed bytes`)
    }
  })
}

t.test('pagecow serve: the bitmaps of marks taken with the CLI, changed through NBD, equal `pagecow changes`', async (t) => {
  if (!haveTools(t, ['nbdinfo', 'qemu-io'])) return
  const store = await makeImageStore(t)
  for (const argv of [
    ['mark', store, 'before'],
    ['write', store, '--offset', String(3 * P)],
    ['mark', store, 'backup-1'],
    ['zero', store, '--offset', String(1 << 20), '--length', String(64 * 1024)],
  ]) {
    const r = await runCli(argv, { stdin: 'early' })
    t.equal(r.code, 0, `pagecow ${argv[0]}`, { stderr: r.stderr })
  }
  const socket = join(shortTempDir(t), 'nbd.sock')
  const s = await serve(t, [store, '--socket', socket])
  const uri = s.line
  // Writes through NBD by qemu-io, one of them never flushed before the map is read.
  await execFileAsync('qemu-io', ['-f', 'raw', '-c', `write -P 0x55 ${5 * 1024 * 1024 + 100} 9000`, '-c', `write -P 0x66 ${15 * 1024 * 1024} 4096`, uri])
  const maps = new Map<string, string[]>()
  for (const name of ['before', 'backup-1']) maps.set(name, await nbdinfoMap(uri, `qemu:dirty-bitmap:${name}`))
  t.same(
    maps.get('backup-1'),
    normaliseMap([
      { start: 0, length: 1 << 20, flags: 0 },
      { start: 1 << 20, length: 64 * 1024, flags: 1 },
      { start: (1 << 20) + 64 * 1024, length: 4 * (1 << 20) - 64 * 1024, flags: 0 },
      { start: 5 * (1 << 20), length: 3 * P, flags: 1 },
      { start: 5 * (1 << 20) + 3 * P, length: 10 * (1 << 20) - 3 * P, flags: 0 },
      { start: 15 * (1 << 20), length: P, flags: 1 },
      { start: 15 * (1 << 20) + P, length: LOWER_SIZE - 15 * (1 << 20) - P, flags: 0 },
    ]),
    'since backup-1: the zeroed range and the two writes through NBD (pages whole)',
  )
  s.child.kill('SIGTERM')
  t.equal(await exitCode(s.child), 0)
  const opened = await ImageStore.open(store, { readOnly: true })
  t.teardown(() => opened.close())
  for (const [name, map] of maps) {
    t.same(map, dirtyMapOf(opened, name, opened.size), `the bitmap of ${name} is what the library lists once the server is gone`)
    const r = await runCli(['changes', store, '--since', name, '--output=json'])
    const entries = JSON.parse(r.stdout) as Array<{ start: number; length: number }>
    const dirty = map.filter((m) => m.endsWith(':1')).map((m) => m.slice(0, -2))
    t.same(
      entries.map((e) => `${e.start}+${e.length}`),
      dirty,
      `pagecow changes --since ${name} lists the dirty extents`,
    )
  }
})

t.test('README recipe: a full copy at a mark, then only the dirty extents copied from a running server', async (t) => {
  if (!haveTools(t, ['nbdinfo', 'nbdcopy', 'qemu-img', 'qemu-io', 'jq'])) return
  const store = await makeImageStore(t)
  const dir = shortTempDir(t)
  const backup = join(dir, 'backup.img')
  t.equal((await runCli(['mark', store, 'backup-1'])).code, 0)
  t.equal((await runCli(['export', store, backup])).code, 0, 'the full backup: the image at the mark')
  const socket = join(dir, 'vm1.sock')
  const s = await serve(t, [store, '--socket', socket])
  const uri = s.line
  const rng = new Random(5)
  for (let i = 0; i < 12; i++) {
    const offset = rng.int(0, LOWER_SIZE - 20000)
    const op = rng.chance(0.7) ? `write -P ${rng.int(1, 256)} ${offset} ${rng.int(1, 20000)}` : `write -z ${offset} ${rng.int(1, 20000)}`
    await execFileAsync('qemu-io', ['-f', 'raw', '-c', op, uri])
  }
  const before = readFileSync(backup)
  // The README's loop, as written there (URI, SOCK and the backup file are its variables).
  const script = join(dir, 'incremental.sh')
  writeFileSync(
    script,
    `set -eu
URI='${uri}' SOCK=${socket} BACKUP=${backup}
nbdinfo --map=qemu:dirty-bitmap:backup-1 --json "$URI" |
  jq -r '.[] | select(.type == 1) | "\\(.offset) \\(.length)"' |
  while read -r off len; do
    qemu-img convert -n \\
      --image-opts "driver=raw,offset=$off,size=$len,file.driver=nbd,file.server.type=unix,file.server.path=$SOCK" \\
      --target-image-opts "driver=raw,offset=$off,size=$len,file.driver=file,file.filename=$BACKUP"
  done
`,
  )
  await execFileAsync('sh', [script])
  const now = join(dir, 'now.img')
  await execFileAsync('nbdcopy', [uri, now])
  t.ok(readFileSync(backup).equals(readFileSync(now)), 'the backup brought up to date equals the image now')
  t.notOk(before.equals(readFileSync(now)), 'and the workload did change it')
  s.child.kill('SIGTERM')
  t.equal(await exitCode(s.child), 0)
})
