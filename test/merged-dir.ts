// Paging through a merged directory: every entry once, in order, and changes between pages seen.
import t from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { TreeStore } from '../lib/index.js'

const FILES = 1500

function makeLower(root: string): string {
  const lower = `${root}/lower`
  mkdirSync(`${lower}/big`, { recursive: true })
  for (let i = 0; i < FILES; i++) writeFileSync(`${lower}/big/f${String(i).padStart(5, '0')}`, '')
  return lower
}

async function pageThrough(store: TreeStore, dir: string, limit: number, between?: (page: number) => Promise<void>): Promise<string[]> {
  const names: string[] = []
  let after: string | undefined
  for (let page = 0; ; page++) {
    const batch = await store.readdir(dir, after === undefined ? { limit } : { after, limit })
    if (batch.length === 0) return names
    names.push(...batch.map((e) => e.name))
    after = batch.at(-1)!.name
    await between?.(page)
  }
}

t.test('paging returns the full merged listing once, in order', async (t) => {
  const root = t.testdir()
  const store = await TreeStore.create(`${root}/store`, { lower: makeLower(root), autoFlushMs: 0 })
  t.teardown(() => store.close())
  await store.unlink('/big/f00007')
  await (await store.open('/big/g-new', 'w')).close()
  const full = (await store.readdir('/big')).map((e) => e.name)
  t.equal(full.length, FILES, 'one whiteout and one new file')
  t.notOk(full.includes('f00007'), 'the whiteout hides its name')
  t.ok(full.includes('g-new'))
  t.same([...full].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))), full, 'byte order')
  for (const limit of [1, 7, 100, FILES]) t.same(await pageThrough(store, '/big', limit), full, `pages of ${limit}`)
  t.same(await store.readdir('/big', { after: 'f00010', limit: 2 }).then((b) => b.map((e) => e.name)), ['f00011', 'f00012'])
  t.same(await store.readdir('/big', { after: 'zzz' }), [], 'nothing after the last name')
})

t.test('a change between pages shows in the pages that follow', async (t) => {
  const root = t.testdir()
  const store = await TreeStore.create(`${root}/store`, { lower: makeLower(root), autoFlushMs: 0 })
  t.teardown(() => store.close())
  await store.unlink('/big/f00001') // the directory now has upper entries of its own
  const seen = await pageThrough(store, '/big', 100, async (page) => {
    if (page !== 0) return
    await store.unlink('/big/f01000') // ahead of the cursor: must not be listed
    await (await store.open('/big/h-late', 'w')).close() // ahead of the cursor: must be listed
  })
  t.notOk(seen.includes('f01000'), 'an entry removed after the first page is not listed')
  t.ok(seen.includes('h-late'), 'an entry created after the first page is listed')
  t.equal(seen.length, FILES - 1)
})

t.test('entries handed out are copies: changing them changes nothing', async (t) => {
  const root = t.testdir()
  const store = await TreeStore.create(`${root}/store`, { lower: makeLower(root), autoFlushMs: 0 })
  t.teardown(() => store.close())
  const first = await store.readdir('/big', { limit: 1 })
  first[0]!.name = 'changed'
  t.equal((await store.readdir('/big', { limit: 1 }))[0]!.name, 'f00000')
})
