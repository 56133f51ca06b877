// Chains through the CLI (SPEC §11): create on a store, info like `qemu-img info --backing-chain`,
// map with the layer of each extent, inspect's layer map, rebase --unsafe after a move.
import { renameSync } from 'node:fs'
import t from 'tap'
import { runCli } from './fixtures/cli-io.js'
import { makeSparseLower } from './fixtures/cli-lower.js'

const P = 4096

t.test('a chain made, shown, mapped and re-pointed with the CLI', async (t) => {
  const dir = t.testdir()
  makeSparseLower(`${dir}/disk.img`, 64 * P, [[8 * P, 8 * P]])
  const ok = async (argv: string[], stdin?: Buffer) => {
    const r = await runCli(argv, stdin ? { stdin } : {})
    t.equal(r.code, 0, `pagecow ${argv.join(' ')}${r.stderr ? `: ${r.stderr}` : ''}`)
    return r.stdout
  }
  await ok(['create', `${dir}/a`, '--lower', `${dir}/disk.img`])
  await ok(['write', `${dir}/a`, '--offset', '4k'], Buffer.alloc(P, 1))
  t.match(await ok(['create', `${dir}/b`, '--lower', `${dir}/a`]), `over the store ${dir}/a (sealed`, 'create says the base is sealed now')
  await ok(['write', `${dir}/b`, '--offset', '32k'], Buffer.alloc(P, 2))
  await ok(['zero', `${dir}/b`, '--offset', '8k', '--length', '4k'])

  const info = await ok(['info', `${dir}/b`])
  t.match(info, new RegExp(`^image: ${dir}/b\nfile format: pagecow\nvirtual size: 256\\.0 KiB \\(262144 bytes\\)\n`), 'info: the store first, as qemu-img info')
  t.match(info, `backing file: ${dir}/a\nbacking file format: pagecow\n`)
  t.match(info, `\nimage: ${dir}/a\n`)
  t.match(info, 'sealed: yes')
  t.match(info, `\nimage: ${dir}/disk.img\nfile format: raw\n`)
  const json = JSON.parse(await ok(['info', `${dir}/b`, '--json'])) as Array<{ depth: number; path: string; format: string }>
  t.same(
    json.map((l) => [l.depth, l.path, l.format]),
    [[0, `${dir}/b`, 'pagecow'], [1, `${dir}/a`, 'pagecow'], [2, `${dir}/disk.img`, 'raw']],
    'info --json: the chain, the store first',
  )

  const map = JSON.parse(await ok(['map', `${dir}/b`, '--output=json'])) as Array<{ start: number; depth: number; zero: boolean; data: boolean }>
  t.same(
    map.map((e) => [e.start / P, e.depth, e.zero, e.data]),
    [
      [0, 2, true, false],
      [1, 1, false, true],
      [2, 0, true, false],
      [3, 2, true, false],
      [8, 0, false, true],
      [9, 2, false, true],
      [16, 2, true, false],
    ],
    'map --output=json: depth 0 this store, 1 its base, 2 the raw image',
  )
  const table = await ok(['map', `${dir}/b`])
  t.match(table, /STATE DEPTH\n/, 'the table has a DEPTH column in a chain')
  t.match(table, /4096 4\.0 KiB\s+4096 4\.0 KiB\s+lower 1\n/)

  const inspect = await ok(['inspect', `${dir}/b`, '--width', '64'])
  t.match(inspect, /layer map: .*\n\s*0 B │·10·····0·{0,}2{7}·{48}\n/, 'inspect draws the layer of each page')
  t.match(inspect, `1 the store ${dir}/a`)

  renameSync(`${dir}/a`, `${dir}/a-moved`)
  const missing = await runCli(['read', `${dir}/b`, '--offset', '0', '--length', '1'])
  t.match(missing.stderr, /missing.*rebase .* --onto NEWPATH --unsafe \(ENOENT\)/, 'a moved base: the error says how to re-point the store')
  const rebased = JSON.parse(await ok(['rebase', `${dir}/b`, '--onto', `${dir}/a-moved`, '--unsafe', '--json'])) as { onto: string; forced: boolean }
  t.same(rebased, { path: `${dir}/b`, from: `${dir}/a`, onto: `${dir}/a-moved`, format: 'store', forced: false })
  t.equal((await runCli(['read', `${dir}/b`, '--offset', '4k', '--length', '1'])).stdoutBytes[0], 1, 'the base is read again')
  t.equal((await runCli(['fsck', `${dir}/b`])).code, 0, 'fsck clean')
})
