// Creating a store on a base seals the base durably before the new store exists (SPEC §11): a
// SIGKILL at any point of `create` leaves either no usable store on the base, or a sealed base
// under a store that reads as it. Never a store on a base that can still be written.
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import t from 'tap'
import { ImageStore, isPagecowError } from '../lib/index.js'
import { runThenKill } from './fixtures/kill-child.js'
import { makeLower } from './fixtures/lower.js'
import { Random } from './fixtures/random.js'

const CHILD = new URL('./fixtures/chain-create-child.ts', import.meta.url).pathname

t.test('SIGKILL while creating stores on bases: a store that opens stands on a sealed base', async (t) => {
  const rng = new Random(0x5ea1)
  let pairs = 0
  let unfinished = 0
  for (let run = 0; run < 3; run++) {
    const dir = t.testdir()
    const raw = makeLower(`${dir}/raw.img`, 64 * 4096, rng).path
    await runThenKill(CHILD, [dir, raw], () => existsSync(`${dir}/log`), rng.int(200, 1500))
    const done = new Set(readFileSync(`${dir}/log`, 'utf8').split('\n').filter((l) => /^\d+$/.test(l)).map(Number))
    const bases = readdirSync(dir).filter((n) => n.startsWith('base-')).map((n) => Number(n.slice(5)))
    for (const n of bases) {
      pairs++
      // Writable: an unfinished database gets its chance to recover or upgrade first.
      const top = await ImageStore.open(`${dir}/top-${n}`, { autoFlushMs: 0 }).catch((err: unknown) => err)
      if (!(top instanceof ImageStore)) {
        t.notOk(done.has(n), `pair ${n}: a create that finished left a store that opens`)
        t.ok(isPagecowError(top, 'ENOENT') || isPagecowError(top, 'ECORRUPT'), `pair ${n}: an unfinished create leaves no store, or one refused as unfinished`, { err: top })
        unfinished++
        continue
      }
      const sealed = await ImageStore.open(`${dir}/base-${n}`).then(
        async (s) => (await s.close(), false),
        (err: unknown) => isPagecowError(err, 'EROFS'),
      )
      t.ok(sealed, `pair ${n}: the store opens, so its base is sealed`)
      const base = await ImageStore.open(`${dir}/base-${n}`, { readOnly: true })
      t.ok((await top.read(0, top.size)).equals(await base.read(0, base.size)), `pair ${n}: the store reads as its base`)
      await base.close()
      await top.close()
    }
  }
  t.ok(pairs > 3, `pairs checked (${pairs}, ${unfinished} cut by the kill)`)
})
