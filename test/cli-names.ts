// The CLI and names that are bytes (issue 9): listings print names as `ls -b` does (compared with
// the real ls on the same directory), --json carries them losslessly (name form: \udcXX escapes,
// which Python's os.fsencode turns back into the bytes), and arguments that are not UTF-8 reach
// the store byte for byte. Times print and serialize to the nanosecond.
import * as nodeFs from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { lutimensSync } from '../lib/fs.js'
import { nameToBytes, TreeStore } from '../lib/index.js'
import { pagecow, ROOT, run } from './fixtures/fuse-mounted.js'

const NAMES: Buffer[] = [
  Buffer.from('caf\xe9.txt', 'latin1'),
  Buffer.from('café'),
  Buffer.from('a b'),
  Buffer.from('back\\slash'),
  Buffer.from('nl\nx'),
  Buffer.from('tab\there'),
  Buffer.from('del\x7f'),
  Buffer.from([0x63, 0x31, 0xc2, 0x80]), // a C1 control, valid UTF-8
  Buffer.from([0x62, 0x61, 0x64, 0xed, 0xa0, 0x80]), // an encoded surrogate: not UTF-8
  Buffer.from('emoji😀'),
  Buffer.from("q\"uo'te"),
]

const at = (dir: string, name: Buffer) => Buffer.concat([Buffer.from(`${dir}/`), name])

t.test('ls prints names as ls -b; --json is lossless', async (t) => {
  const root = t.testdir()
  const lower = join(root, 'lower')
  nodeFs.mkdirSync(lower)
  for (const name of NAMES) nodeFs.writeFileSync(at(lower, name), 'x')
  const storeDir = join(root, 'store')
  await (await TreeStore.create(storeDir, { lower })).close()

  const ls = await run('ls', ['-b', '-1', lower], { env: { ...process.env, LC_ALL: 'C.UTF-8' } })
  const listed = await pagecow(['ls', storeDir, '/'])
  t.equal(listed.code, 0, listed.stderr)
  // `ls -l` columns: mode, links, uid, gid, size, date, time, then the name (escaped: no raw spaces).
  const ours = listed.stdout.trimEnd().split('\n').map((line) => line.split(/ +/).slice(7).join(' '))
  t.same(ours.sort(), ls.stdout.trimEnd().split('\n').sort(), 'every name printed as `ls -b` prints it (LC_ALL=C.UTF-8)')

  const json = await pagecow(['ls', storeDir, '/', '--json'])
  const entries = JSON.parse(json.stdout) as Array<{ name: string }>
  t.same(entries.map((e) => nameToBytes(e.name).toString('hex')).sort(), NAMES.map((n) => n.toString('hex')).sort(), '--json names decode to the exact bytes')
  const py = await run('python3', ['-c', 'import json,os,sys; print(json.dumps(sorted(os.fsencode(e["name"]).hex() for e in json.load(sys.stdin))))'], { input: json.stdout })
  t.same(JSON.parse(py.stdout), NAMES.map((n) => n.toString('hex')).sort(), "Python's os.fsencode turns the --json names back into the bytes (PEP 383)")
})

t.test('arguments that are not UTF-8 name the file they say', async (t) => {
  const root = t.testdir()
  const lower = join(root, 'lower')
  nodeFs.mkdirSync(lower)
  nodeFs.writeFileSync(at(lower, Buffer.from('caf\xe9.txt', 'latin1')), 'latin-1\n')
  nodeFs.writeFileSync(join(lower, 'caf\ufffd.txt'), 'a real U+FFFD in the name\n')
  lutimensSync(at(lower, Buffer.from('caf\xe9.txt', 'latin1')), { sec: 1_700_000_000, nsec: 123_456_789 }, { sec: 1_600_000_000, nsec: 1 })
  const storeDir = join(root, 'store')
  await (await TreeStore.create(storeDir, { lower })).close()
  const bin = join(ROOT, 'lib', 'cli', 'bin.ts')
  // bash passes the raw byte 0xE9; Node alone would decode it to U+FFFD, the other file's name.
  const stat = await run('bash', ['-c', `exec "${process.execPath}" --import tsx "${bin}" stat "$1" "$(printf '/caf\\351.txt')" --json`, 'bash', storeDir], { cwd: ROOT })
  t.equal(stat.code, 0, stat.stderr)
  const st = JSON.parse(stat.stdout) as { size: number; mtimeNs: string; atimeNs: string }
  t.equal(st.size, 8, 'the Latin-1 file, not the one named with U+FFFD')
  t.equal(st.mtimeNs, '1600000000000000001', '--json carries nanosecond times as decimal strings')
  t.equal(st.atimeNs, '1700000000123456789')
  const text = await run('bash', ['-c', `exec "${process.execPath}" --import tsx "${bin}" stat "$1" "$(printf '/caf\\351.txt')"`, 'bash', storeDir], { cwd: ROOT })
  t.match(text.stdout, /path {2}\/caf\\351\.txt/, 'the name printed as ls -b would')
  t.match(text.stdout, /modify {2}2020-09-13T12:26:40\.000000001Z/, 'the time printed to the nanosecond')
  const other = await pagecow(['stat', storeDir, '/caf\ufffd.txt', '--json'])
  t.equal((JSON.parse(other.stdout) as { size: number }).size, 26, 'a name that really holds U+FFFD is still reachable')
})
