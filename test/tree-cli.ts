// The CLI on tree stores: create over a directory, the namespace commands, and inspect / map /
// read / write / fsck / export dispatching on the store kind.
import t from 'tap'
import * as nodeFs from 'node:fs'
import { join } from 'node:path'
import { runCli, type CliRun } from './fixtures/cli-io.js'
import type { TapTest } from './fixtures/tap-test.js'
import { PlainAdapter, snapshot, StoreAdapter } from './fixtures/tree-adapters.js'
import { buildLower, treeChecksum } from './fixtures/tree-lower.js'
import { TreeStore } from '../lib/index.js'

async function setup(t: TapTest) {
  const dir = t.testdir()
  const lower = join(dir, 'lower')
  buildLower(lower, { big: true })
  const store = join(dir, 'store')
  const created = await runCli(['create', store, '--lower', lower])
  t.equal(created.code, 0, created.stderr)
  t.match(created.stdout, /^created .*: tree over .*lower, page size 4\.0 KiB\n$/)
  return { dir, lower, store, sum: treeChecksum(lower) }
}

function ok(t: TapTest, run: CliRun, what: string): string {
  t.equal(run.code, 0, `${what}: ${run.stderr}`)
  return run.stdout
}

function fails(t: TapTest, run: CliRun, code: string, what: string): void {
  t.equal(run.code, 1, `${what}: exit 1`)
  t.match(run.stderr, new RegExp(`^pagecow: .+ \\(${code}\\)\\n$`), `${what}: one line naming ${code}`)
}

/** A command line that cannot run as written: exit 2, EINVAL and a hint to the command's help. */
function misused(t: TapTest, run: CliRun, what: string): void {
  t.equal(run.code, 2, `${what}: exit 2`)
  t.match(run.stderr, /^pagecow: .+ \(EINVAL\)\nTry 'pagecow \w+ --help'\.\n$/, `${what}: the error and a hint`)
}

t.test('namespace commands', async (t) => {
  const s = await setup(t)
  const ls = ok(t, await runCli(['ls', s.store]), 'ls')
  t.match(ls, /^drwxr-xr-x +\d+ +\d+ +\d+ +\d+ \d{4}-\d\d-\d\d \d\d:\d\d etc\n/m)
  t.match(ls, /^lrwxrwxrwx .* etc-abs -> \/etc$/m)
  const listed = JSON.parse(ok(t, await runCli(['ls', s.store, '/usr/bin', '--json']), 'ls --json')) as Array<{ name: string; mode: number; nlink: number }>
  t.same(listed.map((e) => e.name), ['setuid', 'tool', 'tool-link'])
  t.match(ok(t, await runCli(['ls', s.store, '/usr/bin']), 'ls'), /^-rwsr-xr-x /m, 'setuid shown as ls does')
  t.match(ok(t, await runCli(['ls', s.store, '/etc/hosts']), 'ls a file'), / \/etc\/hosts\n$/)
  t.match(ok(t, await runCli(['stat', s.store, '/usr/bin/tool']), 'stat'), /type {2}file\n.*\n +ino {2}\d+\n {2}mode {2}-rwxr-xr-x \(0755\)\n links {2}2\n/)
  t.match(JSON.parse(ok(t, await runCli(['stat', s.store, '/usr/escape', '--json']), 'stat --json')), { type: 'symlink', target: '../../..' })

  ok(t, await runCli(['mkdir', s.store, '/srv']), 'mkdir')
  ok(t, await runCli(['mkdir', s.store, '/srv/private', '--mode', '700']), 'mkdir --mode')
  ok(t, await runCli(['symlink', s.store, '../etc/hosts', '/srv/hosts']), 'symlink')
  ok(t, await runCli(['chmod', s.store, '600', '/etc/passwd']), 'chmod')
  t.equal(ok(t, await runCli(['chmod', s.store, 'g+r,o=u', '/etc/passwd']), 'chmod symbolic'), 'mode of /etc/passwd set to 0646\n')
  ok(t, await runCli(['chmod', s.store, '600', '/etc/passwd']), 'chmod back')
  misused(t, await runCli(['chmod', s.store, 'u+q', '/etc/passwd']), 'a symbolic mode chmod(1) refuses')
  ok(t, await runCli(['mv', s.store, '/usr/share', '/srv/share']), 'mv')
  fails(t, await runCli(['mv', s.store, '/etc/hosts', '/etc/passwd', '-n']), 'EEXIST', 'mv --no-clobber')
  ok(t, await runCli(['mv', s.store, '/etc/hosts', '/etc/passwd', '--exchange']), 'mv --exchange')
  fails(t, await runCli(['rm', s.store, '/srv']), 'EISDIR', 'rm a directory')
  t.match(ok(t, await runCli(['rm', s.store, '/home', '-r']), 'rm -r'), /^removed \/home \(3 objects\)\n$/)
  fails(t, await runCli(['rmdir', s.store, '/srv']), 'ENOTEMPTY', 'rmdir non-empty')
  ok(t, await runCli(['rmdir', s.store, '/srv/private']), 'rmdir')
  ok(t, await runCli(['rm', s.store, '/var/fifo']), 'rm')

  const store = await TreeStore.open(s.store, { readOnly: true })
  t.match(await store.stat('/etc/passwd'), { mode: 0o100644 }, 'exchanged: hosts is now at passwd')
  t.match(await store.stat('/etc/hosts'), { mode: 0o100600 })
  t.equal(await store.readlink('/srv/hosts'), '../etc/hosts')
  t.same((await store.readdir('/srv')).map((e) => e.name), ['hosts', 'share'])
  await t.rejects(store.stat('/home'), { code: 'ENOENT' })
  await store.close()

  misused(t, await runCli(['chmod', s.store, '9', '/etc/hosts']), 'a mode that is not octal')
  fails(t, await runCli(['mkdir', s.store, '/etc/../x']), 'EINVAL', 'a bad path')
  fails(t, await runCli(['stat', s.store, '/etc-abs/passwd']), 'ELOOP', 'a path through a symlink')
  t.equal(treeChecksum(s.lower), s.sum, 'the lower is untouched')
})

t.test('chmod takes MODE as chmod(1) does: -w without --, octal with leading zeros', async (t) => {
  const s = await setup(t)
  const chmod = async (...argv: string[]) => ok(t, await runCli(['chmod', s.store, ...argv]), `chmod ${argv.join(' ')}`)
  t.equal(await chmod('600', '/etc/passwd'), 'mode of /etc/passwd set to 0600\n')
  t.equal(await chmod('-w', '/etc/passwd'), 'mode of /etc/passwd set to 0400\n', 'a MODE beginning with - is not an option')
  t.equal(await chmod('-x,u+w', '/etc/passwd'), 'mode of /etc/passwd set to 0600\n')
  t.equal(await chmod('-r', '/etc/passwd', '--debug'), 'mode of /etc/passwd set to 0200\n', 'options still parse after it')
  t.equal(await chmod('--', '-w,+r', '/etc/passwd'), 'mode of /etc/passwd set to 0444\n', '-- still ends the options')
  t.equal(await chmod('-r,u+rw', '--', '/etc/passwd'), 'mode of /etc/passwd set to 0600\n', '-- after the MODE')
  t.equal(await chmod('-644', '/etc/passwd'), 'mode of /etc/passwd set to 00\n', 'octal after the operator, as chmod -644')
  t.equal(await chmod('000644', '/etc/passwd'), 'mode of /etc/passwd set to 0644\n', 'leading zeros')
  t.match(await chmod('-w', '--help'), /^Usage: pagecow chmod /, '--help still shows help')

  t.equal(await chmod('g+s', '/etc'), 'mode of /etc set to 02755\n')
  t.equal(await chmod('755', '/etc'), 'mode of /etc set to 02755\n', 'under five digits a directory keeps setgid')
  t.equal(await chmod('00755', '/etc'), 'mode of /etc set to 0755\n', 'five digits clear it')
  t.equal(await chmod('u=rwx,go=', '/etc'), 'mode of /etc set to 0700\n')
  t.equal(await chmod('=', '/etc/passwd'), 'mode of /etc/passwd set to 00\n')
  t.equal(await chmod('a+rwx,o=u,a-x', '/etc/passwd'), 'mode of /etc/passwd set to 0666\n')

  // Modes chmod(1) refuses (test/symbolic-mode.ts checks each against it): a usage error, mode unchanged.
  for (const mode of ['017777', '0010000', '8', 'u+644', '+644x', 'u=gx', '-wq', 'u+x,', '', ' 644']) {
    misused(t, await runCli(['chmod', s.store, mode, '/etc/passwd']), `chmod ${JSON.stringify(mode)}`)
  }
  t.equal(await chmod('+', '/etc/passwd'), 'mode of /etc/passwd set to 0666\n', 'unchanged by the refused ones')
  // Options chmod(1) does not take as a mode stay unknown options.
  for (const option of ['-q', '-R', '--json', '--reference=/etc/hosts']) {
    const run = await runCli(['chmod', s.store, option, '/etc/passwd'])
    t.equal(run.code, 2, `${option}: exit 2`)
    t.match(run.stderr, new RegExp(`^pagecow: unknown option '${option.replace(/=.*/, '')}.* \\(EINVAL\\)\\n`), `${option} is an unknown option`)
  }
})

t.test('read and write files; inspect, map, fsck, export', async (t) => {
  const s = await setup(t)
  t.equal(ok(t, await runCli(['read', s.store, '/etc/hosts']), 'read'), '127.0.0.1 localhost\n')
  t.equal(ok(t, await runCli(['read', s.store, '/etc/hosts', '--offset', '4', '--length', '3']), 'read a range'), '0.0')
  t.match(ok(t, await runCli(['write', s.store, '/big.img', '--offset', '8k'], { stdin: 'hello' }), 'write'), /^wrote 5 bytes at offset 8192\n$/)
  const patch = join(s.dir, 'patch')
  nodeFs.writeFileSync(patch, 'new file\n')
  ok(t, await runCli(['write', s.store, '/etc/motd', '--offset', '0', '--input', patch]), 'write makes a file')
  t.equal(ok(t, await runCli(['read', s.store, '/etc/motd']), 'read it'), 'new file\n')
  fails(t, await runCli(['read', s.store, '/etc/hosts', '--output', join(s.lower, 'etc', 'copy')]), 'EINVAL', 'read --output into the lower')
  t.notOk(nodeFs.existsSync(join(s.lower, 'etc', 'copy')))
  fails(t, await runCli(['read', s.store]), 'EINVAL', 'read without PATH on a tree')
  fails(t, await runCli(['read', s.store, '/etc']), 'EISDIR', 'read a directory')
  ok(t, await runCli(['rm', s.store, '/etc/passwd']), 'rm')
  t.equal(ok(t, await runCli(['truncate', s.store, '/etc/motd', '--size', '3']), 'truncate PATH'), 'size 3 bytes, was 9 bytes\n')
  t.equal(ok(t, await runCli(['read', s.store, '/etc/motd']), 'read the truncated file'), 'new')
  ok(t, await runCli(['truncate', s.store, '/etc/motd', '--size', '9']), 'truncate up again')
  t.equal(ok(t, await runCli(['read', s.store, '/etc/motd']), 'regrown bytes read zeros'), 'new\0\0\0\0\0\0')
  fails(t, await runCli(['truncate', s.store, '--size', '3']), 'EINVAL', 'truncate without PATH on a tree')
  fails(t, await runCli(['truncate', s.store, '/etc', '--size', '3']), 'EISDIR', 'truncate a directory')
  t.match(ok(t, await runCli(['flush', s.store]), 'flush a tree store'), /^flushed .*store\n$/)

  const inspect = ok(t, await runCli(['inspect', s.store]), 'inspect')
  t.match(inspect, /^ {2}modified  \/big\.img  1 of 524288 pages copied \(4\.0 KiB\)$/m)
  t.match(inspect, /^ {2}deleted   \/etc\/passwd$/m)
  t.match(inspect, /^ {2}new       \/etc\/motd {2}1 of 1 pages copied/m)
  t.match(inspect, /^files with data {6}2: 2 data pages/m)
  const report = JSON.parse(ok(t, await runCli(['inspect', s.store, '--json']), 'inspect --json'))
  t.match(report, { info: { kind: 'tree' }, changes: [{ path: '/big.img', status: 'modified' }, { path: '/etc/motd', status: 'new' }, { path: '/etc/passwd', status: 'whiteout' }] })
  const fileMap = ok(t, await runCli(['inspect', s.store, '/big.img', '--width', '8']), 'inspect PATH')
  t.match(fileMap, /^file {3}\/big\.img \(inode \d+\)\n {7}2\.0 GiB/)
  t.match(fileMap, /█/, 'the copied page shows')
  t.match(JSON.parse(ok(t, await runCli(['inspect', s.store, '/big.img', '--json']), 'inspect PATH --json')), { info: { pages: { data: 1 } }, map: { totals: { data: { pages: 1 } } } })
  const qemu = JSON.parse(ok(t, await runCli(['map', s.store, '/big.img', '--output=json']), 'map --output=json')) as Array<Record<string, unknown>>
  t.match(qemu[0], { start: 0, length: 8192, depth: 1, zero: true, data: false })
  t.match(qemu[1], { start: 8192, length: 4096, depth: 0, present: true, zero: false, data: true, offset: 8192 })
  fails(t, await runCli(['map', s.store]), 'EINVAL', 'map without PATH on a tree')
  t.match(ok(t, await runCli(['fsck', s.store]), 'fsck'), /: clean \(checked \d+ inodes, \d+ entr(y|ies), /)

  const out = join(s.dir, 'out')
  t.match(ok(t, await runCli(['export', s.store, out]), 'export'), /^exported \d+ objects to .*out: .* of file data copied, holes left sparse\n$/)
  const store = await TreeStore.open(s.store, { readOnly: true })
  t.same(await snapshot(new PlainAdapter(out)), await snapshot(new StoreAdapter(store)), 'the export is the merged tree')
  await store.close()
  fails(t, await runCli(['export', s.store, out]), 'EEXIST', 'export into a non-empty directory')
  fails(t, await runCli(['export', s.store, join(s.dir, 'o2'), '--force']), 'EINVAL', '--force is for images')
  t.equal(treeChecksum(s.lower), s.sum, 'the lower is untouched')
})

t.test('tree commands refuse image stores and image commands name the kind', async (t) => {
  const dir = t.testdir()
  const raw = join(dir, 'disk.raw')
  nodeFs.writeFileSync(raw, Buffer.alloc(65536, 1))
  const image = join(dir, 'image')
  ok(t, await runCli(['create', image, '--lower', raw]), 'create an image store')
  for (const argv of [['ls', image], ['stat', image, '/x'], ['mkdir', image, '/x'], ['rm', image, '/x'], ['mv', image, '/a', '/b'], ['chmod', image, '644', '/x'], ['symlink', image, 'a', '/b'], ['rmdir', image, '/x']]) {
    fails(t, await runCli(argv), 'EINVAL', argv[0]!)
  }
  fails(t, await runCli(['read', image, '/x', '--offset', '0', '--length', '1']), 'EINVAL', 'read PATH on an image')
  fails(t, await runCli(['inspect', image, '/x']), 'EINVAL', 'inspect PATH on an image')
  t.equal(ok(t, await runCli(['read', image, '--offset', '0', '--length', '2']), 'image read still works'), '\x01\x01')
  fails(t, await runCli(['create', join(dir, 's'), '--lower', join(dir, 'nope')]), 'ENOENT', 'a missing lower')
})

t.test('zero and discard on a tree file: whole pages become ZERO', async (t) => {
  const s = await setup(t)
  ok(t, await runCli(['write', s.store, '/big.img', '--offset', '0'], { stdin: 'x'.repeat(5 * 4096) }), 'write 5 pages')
  t.equal(ok(t, await runCli(['zero', s.store, '/big.img', '--offset', '100', '--length', '8k']), 'zero PATH'), 'zeroed 8192 bytes (8.0 KiB) at offset 100\n')
  t.equal(ok(t, await runCli(['discard', s.store, '/big.img', '--offset', '12k', '--length', '6k']), 'discard PATH'), 'discarded 6144 bytes (6.0 KiB) at offset 12288\n')
  const head = Buffer.from(ok(t, await runCli(['read', s.store, '/big.img', '--length', String(5 * 4096)]), 'read back'), 'latin1')
  const want = Buffer.alloc(5 * 4096, 'x')
  want.fill(0, 100, 100 + 8192) // zero: the edges written, page 1 ZERO
  want.fill(0, 3 * 4096, 4 * 4096) // discard: page 3 whole inside [12k, 18k); page 4 partial, kept
  t.ok(head.equals(want), 'the zeroed and discarded ranges read zeros, partial discard edges keep their bytes')
  const info = JSON.parse(ok(t, await runCli(['inspect', s.store, '/big.img', '--json']), 'inspect PATH --json'))
  t.match(info, { info: { pages: { zero: 2 } } }, 'two ZERO pages')
  fails(t, await runCli(['zero', s.store, '--offset', '0', '--length', '1']), 'EINVAL', 'zero without PATH on a tree')
  fails(t, await runCli(['discard', s.store, '/etc', '--offset', '0', '--length', '1']), 'EISDIR', 'discard a directory')
  fails(t, await runCli(['zero', s.store, '/nope', '--offset', '0', '--length', '1']), 'ENOENT', 'zero a missing file')
  misused(t, await runCli(['zero', s.store, '/etc/hosts', '--offset', '-1', '--length', '1']), 'a negative offset')
  t.equal(treeChecksum(s.lower), s.sum, 'the lower is untouched')
})
