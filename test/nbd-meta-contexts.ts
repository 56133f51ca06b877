// Metadata contexts of the NBD server, driven by hand: base:allocation and a qemu:dirty-bitmap:NAME
// per mark, how LIST and SET queries name them, BLOCK_STATUS with several contexts (REQ_ONE, the
// descriptor limit), marks taken or removed while the server runs, and a table of bad input.
import t, { type Test } from 'tap'
import type { Mark } from '../lib/index.js'
import { DIRTY_BITMAP_PREFIX, matchContexts, numberContexts, offeredContexts } from '../lib/nbd/meta-contexts.js'
import {
  NBD_CMD_BLOCK_STATUS,
  NBD_CMD_FLAG_REQ_ONE,
  NBD_CMD_READ,
  NBD_CMD_WRITE,
  NBD_EINVAL,
  NBD_OPT_LIST_META_CONTEXT,
  NBD_OPT_SET_META_CONTEXT,
  NBD_OPT_STRUCTURED_REPLY,
  NBD_REPLY_FLAG_DONE,
  NBD_REPLY_TYPE_BLOCK_STATUS,
  NBD_REP_ACK,
  NBD_REP_ERR_INVALID,
  NBD_REP_ERR_UNKNOWN,
  NBD_REP_META_CONTEXT,
} from '../lib/nbd/protocol.js'
import { blockStatusOf, metaContextData, RawClient, type Chunk } from './fixtures/nbd-raw-client.js'
import { dirtyMapOf, LOWER_SIZE, normaliseMap, serveStore, type Served } from './fixtures/nbd-served.js'

const P = 4096
const MiB = 1024 * 1024

const mark = (name: string, epoch: number): Mark => ({ name, epoch, created: '2024-01-01T00:00:00.000Z' })

t.test('matchContexts: which offered contexts a query names', async (t) => {
  const offered = offeredContexts([mark('A', 1), mark('B.2', 3)])
  t.same(
    offered.map((c) => c.name),
    ['base:allocation', 'qemu:dirty-bitmap:A', 'qemu:dirty-bitmap:B.2'],
  )
  const names = (queries: string[], list: boolean) => matchContexts(queries, offered, list).map((c) => c.name)
  const table: Array<[string[], boolean, string[], string]> = [
    [[], true, ['base:allocation', 'qemu:dirty-bitmap:A', 'qemu:dirty-bitmap:B.2'], 'LIST without queries: everything'],
    [[], false, [], 'SET without queries: nothing'],
    [['base:'], true, ['base:allocation'], 'LIST base:'],
    [['qemu:'], true, ['qemu:dirty-bitmap:A', 'qemu:dirty-bitmap:B.2'], 'LIST qemu:'],
    [['qemu:dirty-bitmap:'], true, ['qemu:dirty-bitmap:A', 'qemu:dirty-bitmap:B.2'], 'LIST qemu:dirty-bitmap:'],
    [['base:', 'qemu:', 'qemu:dirty-bitmap:'], false, [], 'SET with prefixes selects nothing (as qemu)'],
    [['qemu:dirty-bitmap:B.2', 'base:allocation', 'qemu:dirty-bitmap:B.2'], false, ['base:allocation', 'qemu:dirty-bitmap:B.2'], 'SET: offered order, each once'],
    [['qemu:dirty-bitmap:a', 'QEMU:dirty-bitmap:A', 'qemu:dirty-bitmap:A ', 'qemu:dirty-bitmap:B', 'qemu:dirty-bitmap:B.2x'], false, [], 'names are exact: case, spaces, prefixes of names'],
    [['qemu:dirty-bitmap:A', 'x-other:thing', 'nbd-server:', 'qemu:allocation-depth', 'no-colon'], true, ['qemu:dirty-bitmap:A'], 'unknown namespaces and contexts name nothing'],
  ]
  for (const [queries, list, want, what] of table) t.same(names(queries, list), want, what)
  t.same(
    numberContexts(matchContexts(['qemu:dirty-bitmap:A', 'qemu:dirty-bitmap:B.2', 'base:allocation'], offered, false)).map((c) => [c.name, c.id]),
    [
      ['base:allocation', 1],
      ['qemu:dirty-bitmap:A', 2],
      ['qemu:dirty-bitmap:B.2', 3],
    ],
    'IDs: 1 for base:allocation, 2, 3, … for the bitmaps',
  )
})

/** A served store with marks A (then writes), B (then more writes, some not flushed). */
async function marked(t: Test): Promise<Served> {
  return serveStore(t, {
    prepare: async (store) => {
      await store.write(0, Buffer.alloc(P, 1))
      await store.mark('A')
      await store.write(2 * P + 10, Buffer.from('x'))
      await store.zero(MiB, MiB)
      await store.discard(4 * MiB, 2 * P)
      await store.mark('B')
      await store.write(8 * MiB - P, Buffer.alloc(3 * P, 2))
      await store.flush()
      await store.write(10 * MiB, Buffer.alloc(100, 3)) // not flushed: changed all the same
    },
  })
}

async function connect(t: Test, s: Served): Promise<RawClient> {
  const c = await RawClient.connect(s.socket)
  t.teardown(() => c.destroy())
  await c.start()
  return c
}

async function blockStatus(c: RawClient, offset: number, length: number, flags = 0): Promise<{ errno: number; chunks: Chunk[] }> {
  c.request(NBD_CMD_BLOCK_STATUS, offset, length, { flags })
  return c.reply()
}

/** The descriptors of a chunk as a normalised byte map starting at `offset`. */
function mapOf(chunk: Chunk, offset: number): string[] {
  let at = offset
  return normaliseMap(
    blockStatusOf(chunk.data).descriptors.map(([length, flags]) => {
      const e = { start: at, length, flags }
      at += length
      return e
    }),
  )
}

t.test('LIST_META_CONTEXT: base:allocation and a dirty bitmap per mark, IDs 0', async (t) => {
  const s = await marked(t)
  const c = await connect(t, s)
  c.sendOption(NBD_OPT_STRUCTURED_REPLY)
  await c.optionReplies()
  const cases: Array<[string[], string[]]> = [
    [[], ['base:allocation', 'qemu:dirty-bitmap:A', 'qemu:dirty-bitmap:B']],
    [['qemu:dirty-bitmap:'], ['qemu:dirty-bitmap:A', 'qemu:dirty-bitmap:B']],
    [['qemu:'], ['qemu:dirty-bitmap:A', 'qemu:dirty-bitmap:B']],
    [['qemu:dirty-bitmap:B', 'base:'], ['base:allocation', 'qemu:dirty-bitmap:B']],
    [['qemu:dirty-bitmap:C'], []],
  ]
  for (const [queries, want] of cases) {
    c.sendOption(NBD_OPT_LIST_META_CONTEXT, metaContextData('', queries))
    const replies = await c.optionReplies()
    t.equal(replies.at(-1)?.type, NBD_REP_ACK, `list ${JSON.stringify(queries)} ends with ACK`)
    const contexts = replies.filter((r) => r.type === NBD_REP_META_CONTEXT)
    t.same(contexts.map((r) => r.data.subarray(4).toString()), want, `list ${JSON.stringify(queries)}`)
    t.ok(contexts.every((r) => r.data.readUInt32BE(0) === 0), 'LIST replies carry ID 0')
  }
})

t.test('BLOCK_STATUS with base:allocation and two bitmaps: one chunk each, as the library says', async (t) => {
  const s = await marked(t)
  const c = await connect(t, s)
  const go = await c.go({ queries: ['qemu:dirty-bitmap:B', 'base:allocation', 'qemu:dirty-bitmap:A'] })
  t.same(
    go.contexts.map((x) => x.name),
    ['base:allocation', 'qemu:dirty-bitmap:A', 'qemu:dirty-bitmap:B'],
  )
  t.equal(new Set(go.contexts.map((x) => x.id)).size, 3, 'distinct IDs')
  t.notOk(go.contexts.some((x) => x.id === 0), 'nonzero IDs')
  const idOf = (name: string) => go.contexts.find((x) => x.name === name)!.id
  const r = await blockStatus(c, 0, LOWER_SIZE)
  t.equal(r.errno, 0)
  t.same(r.chunks.map((x) => x.type), [NBD_REPLY_TYPE_BLOCK_STATUS, NBD_REPLY_TYPE_BLOCK_STATUS, NBD_REPLY_TYPE_BLOCK_STATUS])
  t.same(r.chunks.map((x) => x.flags & NBD_REPLY_FLAG_DONE), [0, 0, NBD_REPLY_FLAG_DONE], 'DONE on the last chunk only')
  const byId = new Map(r.chunks.map((x) => [blockStatusOf(x.data).id, x]))
  for (const name of ['A', 'B']) {
    t.same(mapOf(byId.get(idOf(`qemu:dirty-bitmap:${name}`))!, 0), dirtyMapOf(s.store, name, LOWER_SIZE), `bitmap ${name} is the library's changes since ${name}`)
  }
  t.same(
    dirtyMapOf(s.store, 'A', LOWER_SIZE),
    normaliseMap([
      { start: 0, length: 2 * P, flags: 0 },
      { start: 2 * P, length: P, flags: 1 },
      { start: 3 * P, length: MiB - 3 * P, flags: 0 },
      { start: MiB, length: MiB, flags: 1 },
      { start: 2 * MiB, length: 2 * MiB, flags: 0 },
      { start: 4 * MiB, length: 2 * P, flags: 1 },
      { start: 4 * MiB + 2 * P, length: 4 * MiB - 3 * P, flags: 0 },
      { start: 8 * MiB - P, length: 3 * P, flags: 1 },
      { start: 8 * MiB + 2 * P, length: 2 * MiB - 2 * P, flags: 0 },
      { start: 10 * MiB, length: P, flags: 1 },
      { start: 10 * MiB + P, length: LOWER_SIZE - 10 * MiB - P, flags: 0 },
    ]),
    'since A: the written, zeroed and discarded pages, and the write not flushed yet; the write before A is clean',
  )
  const base = mapOf(byId.get(idOf('base:allocation'))!, 0)
  t.same(base.slice(0, 2), ['0+4096:0', '4096+4096:3'], 'base:allocation is still the allocation')

  // A range inside the image: descriptors cover it exactly, cut at both ends.
  const part = await blockStatus(c, 2 * P + 100, MiB)
  for (const chunk of part.chunks) {
    const total = blockStatusOf(chunk.data).descriptors.reduce((n, [length]) => n + length, 0)
    t.equal(total, MiB, `context ${blockStatusOf(chunk.data).id} covers the request exactly`)
  }
  t.same(mapOf(part.chunks.find((x) => blockStatusOf(x.data).id === idOf('qemu:dirty-bitmap:A'))!, 2 * P + 100), [
    `${2 * P + 100}+${P - 100}:1`,
    `${3 * P}+${MiB - 3 * P}:0`,
    `${MiB}+${2 * P + 100}:1`,
  ], 'a range cut at both ends')

  // REQ_ONE: one descriptor per context, never longer than asked.
  const one = await blockStatus(c, 0, 3 * P, NBD_CMD_FLAG_REQ_ONE)
  t.equal(one.chunks.length, 3)
  for (const chunk of one.chunks) {
    const { id, descriptors } = blockStatusOf(chunk.data)
    t.equal(descriptors.length, 1, `REQ_ONE: one descriptor for context ${id}`)
    t.ok(descriptors[0]![0] <= 3 * P, 'no longer than the request')
  }
  t.same(blockStatusOf(one.chunks.find((x) => blockStatusOf(x.data).id === idOf('qemu:dirty-bitmap:A'))!.data).descriptors, [[2 * P, 0]])

  // The client's own writes show at once, unflushed.
  c.request(NBD_CMD_WRITE, 12 * MiB, 10, { data: Buffer.alloc(10, 9) })
  t.equal((await c.reply()).errno, 0)
  const after = await blockStatus(c, 12 * MiB, P)
  t.same(blockStatusOf(after.chunks.find((x) => blockStatusOf(x.data).id === idOf('qemu:dirty-bitmap:B'))!.data).descriptors, [[P, 1]], 'a write through NBD is dirty at once')
})

t.test('BLOCK_STATUS: the descriptor limit is shared between contexts; the client asks on from where it stopped', async (t) => {
  // Every other page changed: 2 × 20 000 dirty/clean descriptors, more than 65 536 / 2 per context.
  const pages = 40_000
  const s = await serveStore(t, {
    size: pages * P,
    regions: [],
    prepare: async (store) => {
      await store.mark('A')
      for (let p = 0; p < pages; p += 2) await store.zero(p * P, P)
    },
  })
  const c = await connect(t, s)
  const go = await c.go({ queries: ['base:allocation', 'qemu:dirty-bitmap:A'] })
  const bitmapId = go.contexts.find((x) => x.name === 'qemu:dirty-bitmap:A')!.id
  let at = 0
  let requests = 0
  const seen: string[] = []
  while (at < pages * P) {
    const r = await blockStatus(c, at, pages * P - at)
    t.equal(r.errno, 0)
    requests++
    let covered = Infinity
    for (const chunk of r.chunks) {
      const { descriptors } = blockStatusOf(chunk.data)
      t.ok(descriptors.length <= 32768, `at most 32 768 descriptors per context (got ${descriptors.length})`)
      covered = Math.min(covered, descriptors.reduce((n, [length]) => n + length, 0))
    }
    const bitmap = r.chunks.find((x) => blockStatusOf(x.data).id === bitmapId)!
    seen.push(...mapOf(bitmap, at))
    // Both contexts answer; continue from where the shorter one ended (what libnbd clients do).
    at += covered
    if (requests > 10) break
  }
  t.equal(requests, 2, 'two requests cover the image')
  const joined = normaliseMap(
    seen.map((s) => {
      const [range, flags] = s.split(':') as [string, string]
      const [start, length] = range.split('+').map(Number) as [number, number]
      return { start, length, flags: Number(flags) }
    }),
  )
  t.same(joined, dirtyMapOf(s.store, 'A', pages * P), 'the pieces join to the library’s changes')
})

t.test('marks taken and removed while the server runs', async (t) => {
  const s = await marked(t)
  const list = async () => {
    const c = await connect(t, s)
    c.sendOption(NBD_OPT_LIST_META_CONTEXT, metaContextData('', ['qemu:dirty-bitmap:']))
    const names = (await c.optionReplies()).filter((r) => r.type === NBD_REP_META_CONTEXT).map((r) => r.data.subarray(4).toString())
    c.destroy()
    return names
  }
  const holding = await connect(t, s)
  const go = await holding.go({ queries: ['qemu:dirty-bitmap:A', 'qemu:dirty-bitmap:B'] })
  t.equal(go.contexts.length, 2)
  await s.store.mark('C')
  t.same(await list(), ['qemu:dirty-bitmap:A', 'qemu:dirty-bitmap:B', 'qemu:dirty-bitmap:C'], 'a new mark is offered to the next client')
  await s.store.unmark('B')
  t.same(await list(), ['qemu:dirty-bitmap:A', 'qemu:dirty-bitmap:C'], 'a removed mark is no longer offered')
  const gone = await blockStatus(holding, 0, MiB)
  t.equal(gone.errno, NBD_EINVAL, 'a client that selected the removed mark gets EINVAL for its block status')
  t.match(gone.chunks.at(-1)?.data.subarray(6).toString(), /mark "B".*removed.*connect again/)
  holding.request(NBD_CMD_READ, 0, 512)
  t.equal((await holding.reply()).errno, 0, 'and the connection goes on')

  const again = await connect(t, s)
  await again.go({ queries: ['qemu:dirty-bitmap:C'] })
  await s.store.unmark('C')
  await s.store.mark('C')
  t.equal((await blockStatus(again, 0, MiB)).errno, NBD_EINVAL, 'a mark removed and taken again under its name is not the one selected')

  const fresh = await connect(t, s)
  const now = await fresh.go({ queries: ['qemu:dirty-bitmap:A', 'qemu:dirty-bitmap:C'] })
  t.equal(now.contexts.length, 2)
  const r = await blockStatus(fresh, 0, LOWER_SIZE)
  t.equal(r.errno, 0, 'a new client sees the marks as they are')
  const a = r.chunks.find((x) => blockStatusOf(x.data).id === now.contexts.find((y) => y.name === 'qemu:dirty-bitmap:A')!.id)!
  t.same(mapOf(a, 0), dirtyMapOf(s.store, 'A', LOWER_SIZE), 'A keeps the changes recorded since B (folded into it)')
})

t.test('a read-only export offers the bitmaps too', async (t) => {
  const s = await serveStore(t, {
    server: { readOnly: true },
    prepare: async (store) => {
      await store.mark('A')
      await store.write(5 * P, Buffer.alloc(P, 1))
    },
  })
  const c = await connect(t, s)
  const go = await c.go({ queries: ['qemu:dirty-bitmap:A'] })
  t.same(go.contexts.map((x) => x.name), ['qemu:dirty-bitmap:A'])
  const r = await blockStatus(c, 0, 8 * P)
  t.same(blockStatusOf(r.chunks[0]!.data).descriptors, [
    [5 * P, 0],
    [P, 1],
    [2 * P, 0],
  ])
})

t.test('bad context queries: refused or naming nothing, and the session goes on', async (t) => {
  const s = await marked(t)
  const c = await connect(t, s)
  c.sendOption(NBD_OPT_SET_META_CONTEXT, metaContextData('', ['qemu:dirty-bitmap:A']))
  t.equal((await c.optionReplies()).at(-1)?.type, NBD_REP_ERR_INVALID, 'SET before structured replies')
  c.sendOption(NBD_OPT_STRUCTURED_REPLY)
  await c.optionReplies()
  const longQuery = DIRTY_BITMAP_PREFIX + 'x'.repeat(5000)
  const refused: Array<[string, number, Buffer, number]> = [
    ['a query longer than 4096 bytes', NBD_OPT_SET_META_CONTEXT, metaContextData('', [longQuery]), NBD_REP_ERR_INVALID],
    ['a NUL in a query', NBD_OPT_SET_META_CONTEXT, metaContextData('', ['qemu:dirty-bitmap:A\0']), NBD_REP_ERR_INVALID],
    ['fewer queries than counted', NBD_OPT_LIST_META_CONTEXT, metaContextData('', ['qemu:dirty-bitmap:A']).subarray(0, 8), NBD_REP_ERR_INVALID],
    ['bytes after the queries', NBD_OPT_SET_META_CONTEXT, Buffer.concat([metaContextData('', ['qemu:dirty-bitmap:A']), Buffer.from([0])]), NBD_REP_ERR_INVALID],
    ['an unknown export', NBD_OPT_SET_META_CONTEXT, metaContextData('nope', ['qemu:dirty-bitmap:A']), NBD_REP_ERR_UNKNOWN],
    ['an unknown export (LIST)', NBD_OPT_LIST_META_CONTEXT, metaContextData('nope', []), NBD_REP_ERR_UNKNOWN],
  ]
  for (const [what, option, data, reply] of refused) {
    c.sendOption(option, data)
    const replies = await c.optionReplies()
    t.same(replies.map((r) => r.type), [reply], what)
  }
  const nothing = [
    'qemu:dirty-bitmap:nosuch',
    'qemu:dirty-bitmap:',
    'qemu:',
    'QEMU:dirty-bitmap:A',
    'qemu:dirty-bitmap:A ',
    'qemu:dirty-bitmap:a',
    'qemu:dirty-bitmap',
    'qemu:dirty-bitmap:A:B',
    'qemu:dirty-bitmap:../A',
    'dirty-bitmap:A',
    'A',
    '',
  ]
  for (const query of nothing) {
    c.sendOption(NBD_OPT_SET_META_CONTEXT, metaContextData('', [query]))
    t.same((await c.optionReplies()).map((r) => r.type), [NBD_REP_ACK], `SET ${JSON.stringify(query)} selects nothing`)
  }
  const go = await c.go({ queries: ['qemu:dirty-bitmap:nosuch'] })
  t.same(go.contexts, [], 'an unknown bitmap selects nothing')
  t.equal((await blockStatus(c, 0, MiB)).errno, NBD_EINVAL, 'BLOCK_STATUS without a selected context is EINVAL')
  c.request(NBD_CMD_READ, 0, 512)
  t.equal((await c.reply()).errno, 0, 'the session still works')
  t.same(s.store.marks().map((m) => m.name), ['A', 'B'], 'the marks are untouched')
})
