// `pagecow export TREESTORE OUT --since MARK` (no PATH): everything that changed in a tree store
// since a mark, as a tree incremental (format version 2, tree-operation.ts) that
// `applyIncremental` lays onto a directory made by a full export at the mark. Built from the
// store's namespace delta (names changed, by object) and change records: what is written, and
// what is read to write it, grows with the changes, never with the tree.
//
// How objects travel: an object that existed at the mark is never sent again; where it leaves a
// name it is staged (detach) and given its new names (attach, link); a file of it sends only its
// changed ranges. An object new since the mark (or one whose place at the mark is forgotten:
// moved out of a directory removed since) is created and, for a file, sent whole (sparse: holes
// and zero blocks cost nothing). Every object touched gets its metadata whole (mode, owner, times
// to the nanosecond, xattrs). Sockets are skipped, as a full export skips them.
import type { TreeStore } from '../tree/tree-store.js'
import { isEmptyDelta, type NamespaceDelta } from '../tree/namespace-delta.js'
import { PagecowError } from '../errors.js'
import type { IncrementalMark } from './incremental-format.js'
import { IncrementalWriter, type IncrementalSink, type IncrementalTotals } from './incremental-writer.js'
import { storeIdentity } from './store-identity.js'
import type { TreeOperation } from './tree-operation.js'
import { changedBytesOf, writeChanges } from './write-changes.js'
import type { ChangedExtent } from '../changes/changed-extents.js'
import type { FileType } from '../tree/file-type.js'

/** At most this many names are checked on the target before an apply (a sample, spread evenly). */
const EXPECT_PATHS = 1024

/** What a tree incremental export did (plain data; `pagecow export --since --json` prints it). */
export interface TreeIncrementalExportResult extends IncrementalTotals {
  kind: 'tree'
  since: IncrementalMark
  reached: IncrementalMark
  /** Operations on names and metadata (OP records but `file`). */
  operations: number
  /** Files whose data travels: changed ranges, or whole for new ones. */
  files: number
  /** Objects not carried (sockets), as a full export skips them. */
  skipped: Array<{ path: string; reason: string }>
}

type Opts = { since: string; onProgress?: ((p: { done: number; total: number }) => void) | undefined; signal?: AbortSignal | undefined }

export async function writeTreeIncremental(store: TreeStore, opts: Opts, where: string, sink: IncrementalSink): Promise<TreeIncrementalExportResult> {
  // The newest mark first, then the changes: a change made in between is in this incremental or
  // (being after that mark) in the next, never lost between two.
  const marks = store.marks()
  const since = marks.find((m) => m.name === opts.since)
  if (!since) throw new PagecowError('ENOENT', `no mark named ${JSON.stringify(opts.since)} (\`pagecow marks\` lists them)`)
  const reached = marks.at(-1)!
  const createdAt = new Date().toISOString()
  const delta = store.namespaceDelta(opts.since)
  const atReached = reached.name === since.name ? isEmptyDelta(delta) : isEmptyDelta(store.namespaceDelta(reached.name))
  const plan = await planOf(store, delta)
  const header = {
    format: 'pagecow-incremental' as const,
    kind: 'tree' as const,
    store: storeIdentity(store.info()),
    pageSize: store.pageSize,
    since: markOf(since),
    reached: markOf(reached),
    createdAt,
    atReached,
    expect: { paths: sample(plan.expect, EXPECT_PATHS) },
  }
  const writer = await IncrementalWriter.start(sink, header)
  let operations = 0
  for (const op of [...plan.names, ...plan.links]) {
    await writer.op(op)
    operations++
  }

  // Data: changed ranges of objects the target has, whole content of new files.
  const contents: Array<{ path: string; changed: ChangedExtent[]; size: number }> = []
  for (const f of plan.files) {
    const size = (await store.stat(f.path)).size
    const changed: ChangedExtent[] = f.whole
      ? [...store.extents(f.path)].flatMap((e) => (e.state === 'data' || e.state === 'lower' ? [{ start: e.start, length: e.length, change: 'written' as const }] : []))
      : [...store.changedExtents(f.path, opts.since)]
    contents.push({ path: f.path, changed, size })
  }
  const total = contents.reduce((n, c) => n + changedBytesOf(c.changed, c.size), 0)
  let done = 0
  for (const c of contents) {
    await writer.op({ op: 'file', path: c.path, size: c.size })
    const handle = await store.open(c.path, 'r')
    try {
      await writeChanges(writer, c.changed, c.size, (b, o) => handle.readInto(b, o), (n) => opts.onProgress?.({ done: (done += n), total }), opts.signal, where)
    } finally {
      await handle.close()
    }
  }

  for (const m of plan.meta) {
    const st = await store.stat(m.path)
    const keepsXattrs = st.type === 'file' || st.type === 'directory' || st.type === 'fifo'
    const xattrs: Array<[string, string]> | null = keepsXattrs ? [] : null
    if (xattrs) for (const name of await store.listxattr(m.path)) xattrs.push([name, (await store.getxattr(m.path, name)).toString('base64')])
    await writer.op({
      op: 'meta',
      path: m.path,
      type: m.type,
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      atimeNs: st.atimeNs.toString(),
      mtimeNs: st.mtimeNs.toString(),
      xattrs,
    })
    operations++
  }
  const totals = await writer.end()
  return { kind: 'tree', since: header.since, reached: header.reached, operations, files: contents.length, skipped: plan.skipped, ...totals }
}

type DataType = Extract<TreeOperation, { op: 'create' }>['type']

interface Plan {
  /** Detaches (deepest names first), then attaches and creates (parents first). */
  names: TreeOperation[]
  /** Further names of objects, once every object is in place. */
  links: TreeOperation[]
  files: Array<{ path: string; whole: boolean }>
  meta: Array<{ path: string; type: DataType }>
  expect: Array<[string, FileType]>
  skipped: Array<{ path: string; reason: string }>
}

async function planOf(store: TreeStore, delta: NamespaceDelta): Promise<Plan> {
  const skipped: Plan['skipped'] = []
  const socket = (path: string) => skipped.push({ path, reason: 'sockets cannot be created by an export (the listening process makes them)' })
  const nowObjects = new Set(delta.names.flatMap((n) => (n.now && n.nowPath !== null ? [n.now.ino] : [])))

  // Names the objects leave, in the tree as it was at the mark.
  const staged = new Set<number>()
  const detach: Array<{ path: string; keep: string | null; type: FileType }> = []
  for (const n of delta.names) {
    if (!n.before || n.markPath === null) continue
    const keep = nowObjects.has(n.before.ino) && n.before.type !== 'socket'
    if (keep) staged.add(n.before.ino)
    detach.push({ path: n.markPath, keep: keep ? String(n.before.ino) : null, type: n.before.type })
  }
  detach.sort((a, b) => (a.path < b.path ? 1 : a.path > b.path ? -1 : 0))

  // Names the objects take, in the tree as it is now.
  const staying = new Map(delta.staying.map((s) => [s.ino, s.path]))
  const placed = new Map<number, string>()
  const created = new Set<number>()
  const attach: TreeOperation[] = []
  const links: TreeOperation[] = []
  const taking = delta.names.filter((n) => n.now && n.nowPath !== null).sort((a, b) => (a.nowPath! < b.nowPath! ? -1 : a.nowPath! > b.nowPath! ? 1 : 0))
  for (const n of taking) {
    const { ino, type } = n.now!
    const path = n.nowPath!
    if (type === 'socket') {
      socket(path)
      continue
    }
    const first = placed.get(ino)
    if (first !== undefined) links.push({ op: 'link', path, to: first })
    else if (staged.has(ino)) {
      attach.push({ op: 'attach', path, key: String(ino) })
      placed.set(ino, path)
    } else if (staying.has(ino)) {
      links.push({ op: 'link', path, to: staying.get(ino)! })
      placed.set(ino, staying.get(ino)!)
    } else {
      const st = await store.stat(path)
      if (type === 'symlink') attach.push({ op: 'create', path, type, target: await store.readlink(path) })
      else if (type === 'char-device' || type === 'block-device') attach.push({ op: 'create', path, type, rdev: st.rdev })
      else attach.push({ op: 'create', path, type })
      created.add(ino)
      placed.set(ino, path)
    }
  }

  // Data and metadata: every object named anew or touched, at one of its paths now.
  const files: Plan['files'] = []
  const meta = new Map<number, { path: string; type: DataType }>()
  const typeOf = new Map(delta.names.flatMap((n) => (n.now ? [[n.now.ino, n.now.type] as const] : [])))
  for (const [ino, path] of placed) meta.set(ino, { path, type: typeOf.get(ino) as DataType })
  const touched = delta.touched.some((t) => t.path === '/') ? delta.touched : [...delta.touched, { ino: -1, path: '/', data: false }]
  for (const t of touched) {
    const path = placed.get(t.ino) ?? t.path
    let type = typeOf.get(t.ino)
    if (type === undefined) type = (await store.stat(path)).type
    if (type === 'socket') continue
    if (!meta.has(t.ino)) meta.set(t.ino, { path, type: type as DataType })
    if (t.data && !created.has(t.ino) && type === 'file') files.push({ path, whole: false })
  }
  for (const ino of created) if (typeOf.get(ino) === 'file') files.push({ path: placed.get(ino)!, whole: true })
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  const metaList = [...meta.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))

  return {
    names: [...detach.map((d): TreeOperation => ({ op: 'detach', path: d.path, keep: d.keep })), ...attach],
    links,
    files,
    meta: metaList,
    expect: detach.filter((d) => d.type !== 'socket').map((d): [string, FileType] => [d.path, d.type]),
    skipped,
  }
}

function sample<T>(items: T[], limit: number): T[] {
  if (items.length <= limit) return items
  const out: T[] = []
  for (let i = 0; i < limit; i++) out.push(items[Math.floor((i * items.length) / limit)]!)
  return out
}

function markOf(m: { name: string; epoch: number; created: string }): IncrementalMark {
  return { name: m.name, epoch: m.epoch, created: m.created }
}
