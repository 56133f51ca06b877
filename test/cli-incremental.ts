// `pagecow export --since` and `pagecow apply` (issue 12), through the CLI: a backup chain made and
// restored with the commands a user types (files and standard output), --json, --help, and a
// table of bad input (exit code, error code, one line on stderr, nothing changed).
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import t from 'tap'
import { runCli, type CliRun } from './fixtures/cli-io.js'
import { makeSparseLower } from './fixtures/cli-lower.js'
import type { TapTest } from './fixtures/tap-test.js'

const MiB = 1024 * 1024

function ok(t: TapTest, run: CliRun, what: string): CliRun {
  t.equal(run.code, 0, `${what}: exit 0`, { stderr: run.stderr })
  return run
}

const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex')

t.test('a backup chain through the CLI: full export at a mark, incrementals, apply, byte-exact', async (t) => {
  const dir = t.testdir({ tree: { 'disk.img': 'x'.repeat(40000) } })
  const lower = join(dir, 'base.img')
  makeSparseLower(lower, 8 * MiB, [[0, 256 * 1024], [4 * MiB, 64 * 1024]])
  const store = join(dir, 'vm.cow')
  ok(t, await runCli(['create', store, '--lower', lower]), 'create')
  ok(t, await runCli(['write', store, '--offset', '100k'], { stdin: 'before the mark' }), 'write')
  ok(t, await runCli(['mark', store, 'monday']), 'mark monday')
  ok(t, await runCli(['export', store, join(dir, 'restore.img')]), 'full export')
  ok(t, await runCli(['write', store, '--offset', '1M'], { stdin: Buffer.alloc(20000, 1) }), 'write')
  ok(t, await runCli(['zero', store, '--offset', '0', '--length', '64k']), 'zero')
  ok(t, await runCli(['mark', store, 'tuesday']), 'mark tuesday')
  const first = ok(t, await runCli(['export', store, join(dir, 'inc1'), '--since', 'monday', '--json']), 'export --since monday --json')
  const r1 = JSON.parse(first.stdout) as { kind: string; since: { name: string }; reached: { name: string }; size: number; dataBytes: number; zeroBytes: number; fileBytes: number; id: string }
  t.match(r1, { kind: 'image', since: { name: 'monday' }, reached: { name: 'tuesday' }, size: 8 * MiB, zeroBytes: 64 * 1024 })
  t.equal(r1.fileBytes, readFileSync(join(dir, 'inc1')).length, 'fileBytes is the size of the incremental')
  ok(t, await runCli(['truncate', store, '--size', '10M']), 'grow')
  ok(t, await runCli(['write', store, '--offset', '9M'], { stdin: 'after tuesday' }), 'write')
  const streamed = ok(t, await runCli(['export', store, '-', '--since', 'tuesday']), 'export - --since tuesday')
  writeFileSync(join(dir, 'inc2'), streamed.stdoutBytes)
  ok(t, await runCli(['export', store, join(dir, 'now.img')]), 'full export now')

  const before = sha(join(dir, 'restore.img'))
  const refused = await runCli(['apply', join(dir, 'inc2'), join(dir, 'restore.img')])
  t.equal(refused.code, 1, 'inc2 before inc1: exit 1')
  t.match(refused.stderr, /^pagecow: .* \(ECHAIN\)\n$/, 'one line naming ECHAIN')
  t.equal(sha(join(dir, 'restore.img')), before, 'nothing changed')
  const a1 = ok(t, await runCli(['apply', join(dir, 'inc1'), join(dir, 'restore.img')]), 'apply inc1')
  t.match(a1.stdout, /^applied .*inc1 onto .*restore\.img: the changes since monday, up to the mark tuesday; /)
  const a2 = ok(t, await runCli(['apply', join(dir, 'inc2'), join(dir, 'restore.img'), '--json']), 'apply inc2 --json')
  t.match(JSON.parse(a2.stdout), { kind: 'image', since: { name: 'tuesday' }, size: 10 * MiB, positionChecked: true, positionRecorded: true, resumed: false })
  t.equal(sha(join(dir, 'restore.img')), sha(join(dir, 'now.img')), 'the restored image equals a full export now')
  const human = ok(t, await runCli(['export', store, join(dir, 'inc3'), '--since', 'monday']), 'export human')
  t.match(human.stdout, /^exported the changes of the image since monday \(up to the mark tuesday\) to .*inc3: /)

  // A tree store: one file.
  const tree = join(dir, 'root.cow')
  ok(t, await runCli(['create', tree, '--lower', join(dir, 'tree')]), 'create tree')
  ok(t, await runCli(['mark', tree, 'boot']), 'mark boot')
  ok(t, await runCli(['export', tree, join(dir, 'tree-at-boot')]), 'export the tree')
  ok(t, await runCli(['write', tree, '/disk.img', '--offset', '5000'], { stdin: 'changed' }), 'write a file')
  ok(t, await runCli(['export', tree, join(dir, 'disk.inc'), '--since', 'boot', '/disk.img']), 'export --since boot PATH')
  ok(t, await runCli(['apply', join(dir, 'disk.inc'), join(dir, 'tree-at-boot', 'disk.img')]), 'apply onto the file')
  const now = ok(t, await runCli(['read', tree, '/disk.img']), 'read the file now')
  t.ok(readFileSync(join(dir, 'tree-at-boot', 'disk.img')).equals(now.stdoutBytes), 'the file equals the file now')
})

t.test('a whole-tree backup chain through the CLI: full export at a mark, incrementals (file and -), apply, --json', async (t) => {
  const dir = t.testdir({ tree: { a: 'a\n', d: { b: 'b\n' } } })
  const tree = join(dir, 'root.cow')
  ok(t, await runCli(['create', tree, '--lower', join(dir, 'tree')]), 'create')
  ok(t, await runCli(['mark', tree, 'mon']), 'mark mon')
  ok(t, await runCli(['export', tree, join(dir, 'backup')]), 'full export at mon')
  ok(t, await runCli(['write', tree, '/d/b', '--offset', '1M'], { stdin: 'grown' }), 'write')
  ok(t, await runCli(['mv', tree, '/d', '/e']), 'rename a directory')
  ok(t, await runCli(['mark', tree, 'tue']), 'mark tue')
  const first = ok(t, await runCli(['export', tree, join(dir, 'inc1'), '--since', 'mon', '--json']), 'export --since mon --json')
  t.match(JSON.parse(first.stdout), { kind: 'tree', since: { name: 'mon' }, reached: { name: 'tue' }, files: 1 })
  ok(t, await runCli(['rm', tree, '/a']), 'rm')
  const streamed = ok(t, await runCli(['export', tree, '-', '--since', 'tue']), 'export - --since tue')
  writeFileSync(join(dir, 'inc2'), streamed.stdoutBytes)
  ok(t, await runCli(['export', tree, join(dir, 'now')]), 'full export now')
  const refused = await runCli(['apply', join(dir, 'inc2'), join(dir, 'backup')])
  t.equal(refused.code, 1, 'inc2 before inc1: exit 1')
  t.match(refused.stderr, /^pagecow: .*at the mark "mon".*\(ECHAIN\)\n$/, 'one line saying where the target is (ECHAIN)')
  const a1 = ok(t, await runCli(['apply', join(dir, 'inc1'), join(dir, 'backup')]), 'apply inc1')
  t.match(a1.stdout, /^applied .*inc1 onto the tree .*backup: the changes since mon, up to the mark tue; \d+ operations, 1 files/)
  const a2 = ok(t, await runCli(['apply', join(dir, 'inc2'), join(dir, 'backup'), '--json']), 'apply inc2 --json')
  t.match(JSON.parse(a2.stdout), { kind: 'tree', since: { name: 'tue' }, positionChecked: true, positionRecorded: true, resumed: false })
  t.same(readdirSync(join(dir, 'backup')).sort(), readdirSync(join(dir, 'now')).sort(), 'the same names at the root')
  t.ok(readFileSync(join(dir, 'backup', 'e', 'b')).equals(readFileSync(join(dir, 'now', 'e', 'b'))), 'the moved, written file')
})

t.test('--help of export and apply', async (t) => {
  const e = ok(t, await runCli(['export', '--help']), 'export --help')
  t.match(e.stdout, /--since <NAME>/)
  t.match(e.stdout, /\[PATH\]/)
  const a = ok(t, await runCli(['apply', '--help']), 'apply --help')
  t.match(a.stdout, /Usage: pagecow apply \[options\] <INCREMENTAL> <TARGET>/)
  t.match(a.stdout, /ECHAIN/)
  t.match(a.stdout, /tree incremental/)
  t.match(a.stdout, /EBUSY/)
})

t.test('bad input to export --since and apply', async (t) => {
  const dir = t.testdir({ tree: { f: 'f\n' } })
  const lower = join(dir, 'base.img')
  makeSparseLower(lower, 2 * MiB, [[0, 64 * 1024]])
  const store = join(dir, 'vm.cow')
  const tree = join(dir, 'root.cow')
  ok(t, await runCli(['create', store, '--lower', lower]), 'create')
  ok(t, await runCli(['create', tree, '--lower', join(dir, 'tree')]), 'create tree')
  ok(t, await runCli(['mark', store, 'm']), 'mark')
  ok(t, await runCli(['mark', tree, 'm']), 'mark tree')
  ok(t, await runCli(['export', store, join(dir, 'full.img')]), 'full export')
  ok(t, await runCli(['write', store, '--offset', '0'], { stdin: 'x' }), 'write')
  ok(t, await runCli(['export', store, join(dir, 'inc'), '--since', 'm']), 'export --since')
  const damaged = Buffer.from(readFileSync(join(dir, 'inc')))
  damaged[damaged.length - 30] = damaged[damaged.length - 30]! ^ 0xff
  writeFileSync(join(dir, 'damaged'), damaged)
  writeFileSync(join(dir, 'short'), readFileSync(join(dir, 'inc')).subarray(0, 100))
  writeFileSync(join(dir, 'other.img'), Buffer.alloc(2 * MiB, 3))
  ok(t, await runCli(['export', tree, join(dir, 'tree-at-m')]), 'full tree export')
  ok(t, await runCli(['write', tree, '/f', '--offset', '0'], { stdin: 'y' }), 'write the tree')
  ok(t, await runCli(['export', tree, join(dir, 'tinc'), '--since', 'm']), 'tree export --since')
  const tdamaged = Buffer.from(readFileSync(join(dir, 'tinc')))
  tdamaged[tdamaged.length - 40] = tdamaged[tdamaged.length - 40]! ^ 0xff
  writeFileSync(join(dir, 'tdamaged'), tdamaged)
  const tfuture = Buffer.from(readFileSync(join(dir, 'tinc')))
  tfuture.writeUInt32LE(9, 8)
  writeFileSync(join(dir, 'tfuture'), tfuture)
  const treeBefore = readFileSync(join(dir, 'tree-at-m', 'f'))
  const rows: Array<{ name: string; argv: string[]; exit: number; code: string; tty?: boolean }> = [
    { name: 'apply: no arguments', argv: ['apply'], exit: 2, code: 'EINVAL' },
    { name: 'apply: one argument', argv: ['apply', join(dir, 'inc')], exit: 2, code: 'EINVAL' },
    { name: 'apply: an unknown option', argv: ['apply', join(dir, 'inc'), join(dir, 'full.img'), '--fast'], exit: 2, code: 'EINVAL' },
    { name: 'apply: no such incremental', argv: ['apply', join(dir, 'none'), join(dir, 'full.img')], exit: 1, code: 'ENOENT' },
    { name: 'apply: not an incremental', argv: ['apply', lower, join(dir, 'full.img')], exit: 1, code: 'EINVAL' },
    { name: 'apply: a damaged incremental', argv: ['apply', join(dir, 'damaged'), join(dir, 'full.img')], exit: 1, code: 'ECORRUPT' },
    { name: 'apply: a truncated incremental', argv: ['apply', join(dir, 'short'), join(dir, 'full.img')], exit: 1, code: 'ECORRUPT' },
    { name: 'apply: another image', argv: ['apply', join(dir, 'inc'), join(dir, 'other.img')], exit: 1, code: 'ECHAIN' },
    { name: 'apply: no such target', argv: ['apply', join(dir, 'inc'), join(dir, 'none.img')], exit: 1, code: 'ENOENT' },
    { name: 'apply: a directory as target', argv: ['apply', join(dir, 'inc'), dir], exit: 1, code: 'EINVAL' },
    { name: 'export: no such mark', argv: ['export', store, join(dir, 'x'), '--since', 'nope'], exit: 1, code: 'ENOENT' },
    { name: 'export: a bad mark name', argv: ['export', store, join(dir, 'x'), '--since', 'a b'], exit: 1, code: 'EINVAL' },
    { name: 'export: PATH without --since', argv: ['export', tree, join(dir, 'x'), '/f'], exit: 2, code: 'EINVAL' },
    { name: 'export: PATH of an image store', argv: ['export', store, join(dir, 'x'), '--since', 'm', '/f'], exit: 1, code: 'EINVAL' },
    { name: 'export: a tree incremental into the store', argv: ['export', tree, join(tree, 'x'), '--since', 'm'], exit: 1, code: 'EINVAL' },
    { name: 'export: a tree incremental, no such mark', argv: ['export', tree, join(dir, 'x'), '--since', 'nope'], exit: 1, code: 'ENOENT' },
    { name: 'export: a tree incremental over a file without --force', argv: ['export', tree, join(dir, 'tinc'), '--since', 'm'], exit: 1, code: 'EEXIST' },
    { name: 'export: a tree incremental, - to a terminal', argv: ['export', tree, '-', '--since', 'm'], exit: 1, code: 'EINVAL', tty: true },
    { name: 'apply: a tree incremental onto a file', argv: ['apply', join(dir, 'tinc'), join(dir, 'full.img')], exit: 1, code: 'EINVAL' },
    { name: 'apply: an image incremental onto a tree', argv: ['apply', join(dir, 'inc'), join(dir, 'tree-at-m')], exit: 1, code: 'EINVAL' },
    { name: 'apply: a tree incremental onto another tree', argv: ['apply', join(dir, 'tinc'), join(dir, 'tree')], exit: 1, code: 'ECHAIN' },
    { name: 'apply: a damaged tree incremental', argv: ['apply', join(dir, 'tdamaged'), join(dir, 'tree-at-m')], exit: 1, code: 'ECORRUPT' },
    { name: 'apply: a tree incremental with a newer format', argv: ['apply', join(dir, 'tfuture'), join(dir, 'tree-at-m')], exit: 1, code: 'EVERSION' },
    { name: 'export: over a file without --force', argv: ['export', store, join(dir, 'inc'), '--since', 'm'], exit: 1, code: 'EEXIST' },
    { name: 'export: - with --json', argv: ['export', store, '-', '--since', 'm', '--json'], exit: 1, code: 'EINVAL' },
    { name: 'export: - with --force', argv: ['export', store, '-', '--since', 'm', '--force'], exit: 1, code: 'EINVAL' },
    { name: 'export: - to a terminal', argv: ['export', store, '-', '--since', 'm'], exit: 1, code: 'EINVAL', tty: true },
    { name: 'export: into the store', argv: ['export', store, join(store, 'x'), '--since', 'm'], exit: 1, code: 'EINVAL' },
  ]
  const before = sha(join(dir, 'full.img'))
  for (const row of rows) {
    const run = await runCli(row.argv, { stdoutIsTTY: row.tty === true })
    t.equal(run.code, row.exit, `${row.name}: exit ${row.exit}`, { stderr: run.stderr })
    t.match(run.stderr.split('\n')[0], new RegExp(`^pagecow: .*\\(${row.code}\\)$`), `${row.name}: ${row.code}`)
  }
  t.equal(sha(join(dir, 'full.img')), before, 'the target never changed')
  t.ok(readFileSync(join(dir, 'tree-at-m', 'f')).equals(treeBefore), 'the tree target never changed')
  t.notOk(readFileSync(join(dir, 'inc')).equals(Buffer.alloc(0)), 'the incremental is intact')
})
