// The CLI over a squashfs image: `pagecow create STORE --lower IMAGE` tells the image by its magic
// (`--lower-format` insists), the tree commands work on the store as on a directory lower, and the
// result is the kernel's outcome of the same commands on a copy of the kernel's mount of the
// image. A user without root does all of it: no mount, no loop device, no kernel module.
import t from 'tap'
import * as nodeFs from 'node:fs'
import { join } from 'node:path'
import { TreeStore } from '../lib/index.js'
import { cannotRun, cannotRunPart } from './fixtures/cannot-run.js'
import { runCli, type CliRun } from './fixtures/cli-io.js'
import { pagecow, ROOT, run } from './fixtures/fuse-mounted.js'
import { fileSha256 } from './fixtures/squashfs-store.js'
import { kernelMount, kernelMountMissing, mksquashfs, mksquashfsMissing } from './fixtures/squashfs-tree.js'
import type { TapTest } from './fixtures/tap-test.js'
import { PlainAdapter, snapshot, StoreAdapter } from './fixtures/tree-adapters.js'
import { buildLower, copyTree } from './fixtures/tree-lower.js'

function ok(t: TapTest, r: CliRun, what: string): string {
  t.equal(r.code, 0, `${what}: ${r.stderr}`)
  return r.stdout
}

/** A refused command: exit 2 for a usage error (a bad option value), 1 for anything else. */
function fails(t: TapTest, r: CliRun, code: string, what: string, exit = 1): void {
  t.equal(r.code, exit, `${what}: exit ${exit}`)
  t.match(r.stderr, new RegExp(`^pagecow: .+ \\(${code}\\)\\n`), `${what}: one line naming ${code}`)
}

const missing = mksquashfsMissing()
if (missing) {
  cannotRun(t, missing)
} else {
  /** A lower tree and its squashfs image in a fresh test directory. */
  const setup = (t: TapTest) => {
    const dir = t.testdir()
    const src = join(dir, 'src')
    buildLower(src)
    const image = join(dir, 'root.sqfs')
    mksquashfs(src, image, ['-comp', 'zstd'])
    return { dir, src, image, sum: fileSha256(image) }
  }

  t.test('create tells a squashfs image by its magic; --lower-format insists; bad values refused', async (t) => {
    const { dir, src, image } = setup(t)
    const human = ok(t, await runCli(['create', join(dir, 'a'), '--lower', image]), 'create')
    t.match(human, /^created \S+\/a: tree \(squashfs image\) over \S+root\.sqfs, page size 4\.0 KiB\n$/)
    const info = JSON.parse(ok(t, await runCli(['create', join(dir, 'b'), '--lower', image, '--lower-format', 'squashfs', '--json']), 'create --json'))
    t.match(info, { kind: 'tree', lower: { path: image, format: 'squashfs' } })
    t.match(ok(t, await runCli(['create', join(dir, 'c'), '--lower', image, '--lower-format', 'raw']), '--lower-format raw'), /: \d+\.\d KiB image over /, 'raw: an image store of its bytes')
    t.match(ok(t, await runCli(['create', join(dir, 'd'), '--lower', src, '--lower-format=directory']), '--lower-format=directory'), /: tree over /)
    const raw = join(dir, 'disk.raw')
    nodeFs.writeFileSync(raw, Buffer.alloc(65536))
    const bad: Array<[string, string[], string, number?]> = [
      ['an unknown format', ['--lower', image, '--lower-format', 'squash'], 'EINVAL', 2],
      ['an empty format', ['--lower', image, '--lower-format', ''], 'EINVAL', 2],
      ['formats are lower case', ['--lower', image, '--lower-format', 'SQUASHFS'], 'EINVAL', 2],
      ['squashfs over a directory', ['--lower', src, '--lower-format', 'squashfs'], 'EINVAL'],
      ['squashfs over a raw image', ['--lower', raw, '--lower-format', 'squashfs'], 'EINVAL'],
      ['directory over an image', ['--lower', image, '--lower-format', 'directory'], 'ENOTDIR'],
      ['raw over a directory', ['--lower', src, '--lower-format', 'raw'], 'EINVAL'],
      ['a missing image', ['--lower', join(dir, 'none.sqfs')], 'ENOENT'],
      ['a missing image, format given', ['--lower', join(dir, 'none.sqfs'), '--lower-format', 'squashfs'], 'ENOENT'],
    ]
    for (const [what, argv, code, exit] of bad) {
      fails(t, await runCli(['create', join(dir, 'new'), ...argv]), code, what, exit)
      t.notOk(nodeFs.existsSync(join(dir, 'new')), `${what}: nothing created`)
    }
    const usage = await runCli(['create', join(dir, 'new'), '--lower', image, '--lower-format'])
    t.equal(usage.code, 2, '--lower-format without a value: exit 2 (a usage error)')
    t.match(usage.stderr, /argument missing/, 'commander says the value is missing')
    const unknown = await runCli(['create', join(dir, 'new'), '--lower', image, '--lower-format', 'squash'])
    t.match(unknown.stderr, /--lower-format: must be one of raw, directory, squashfs/, 'the message lists the formats')
    t.match(ok(t, await runCli(['create', '--help']), 'create --help'), /--lower-format <FORMAT>/)
  })

  t.test('the tree commands over the image, against the kernel’s mount of it', async (t) => {
    const kernelMissing = kernelMountMissing()
    if (kernelMissing) return cannotRun(t, kernelMissing)
    const { dir, image, sum } = setup(t)
    const store = join(dir, 'store')
    ok(t, await runCli(['create', store, '--lower', image]), 'create')
    const plain = join(dir, 'plain')
    const unmount = kernelMount(image, join(dir, 'kernel'))
    try {
      copyTree(join(dir, 'kernel'), plain)
    } finally {
      unmount()
    }
    const model = new PlainAdapter(plain)
    t.match(ok(t, await runCli(['ls', store, '/etc']), 'ls'), /^-rw-r--r-- .* hosts\n/m)
    t.equal(ok(t, await runCli(['read', store, '/etc/hosts']), 'read'), '127.0.0.1 localhost\n')
    ok(t, await runCli(['write', store, '/etc/hosts', '--offset', '0'], { stdin: '# edited\n' }), 'write')
    await model.write('/etc/hosts', 0, Buffer.from('# edited\n'))
    ok(t, await runCli(['mv', store, '/usr/share', '/share']), 'mv')
    await model.rename('/usr/share', '/share')
    ok(t, await runCli(['rm', store, '/etc/passwd']), 'rm')
    await model.unlink('/etc/passwd')
    ok(t, await runCli(['rm', store, '/home', '-r']), 'rm -r')
    nodeFs.rmSync(join(plain, 'home'), { recursive: true })
    ok(t, await runCli(['chmod', store, 'go-rx', '/usr/bin/tool']), 'chmod')
    await model.chmod('/usr/bin/tool', 0o700)
    ok(t, await runCli(['mkdir', store, '/srv']), 'mkdir')
    await model.mkdir('/srv')
    ok(t, await runCli(['symlink', store, '../etc/hosts', '/srv/hosts']), 'symlink')
    await model.symlink('../etc/hosts', '/srv/hosts')
    ok(t, await runCli(['truncate', store, '/etc/ssl/cert.pem', '--size', '100']), 'truncate')
    await model.truncate('/etc/ssl/cert.pem', 100)
    const inspect = ok(t, await runCli(['inspect', store]), 'inspect')
    t.match(inspect, /^ {2}modified +\/etc\/hosts +1 of 1 pages copied/m)
    t.match(inspect, /^ {2}renamed +\/share/m)
    t.match(ok(t, await runCli(['fsck', store]), 'fsck'), /: clean/)
    const opened = await TreeStore.open(store, { readOnly: true })
    t.same(await snapshot(new StoreAdapter(opened)), await snapshot(model), 'the store holds what the kernel made of the same commands')
    await opened.close()
    const out = join(dir, 'out')
    ok(t, await runCli(['export', store, out]), 'export')
    t.same(await snapshot(new PlainAdapter(out)), await snapshot(model), 'and so does its export')
    fails(t, await runCli(['export', store, join(image, 'x')]), 'E[A-Z]+', 'never into the image')
    t.equal(fileSha256(image), sum, 'the image file is unchanged')
  })

  t.test('a user without root: create, read, write, fsck, export; the image untouched', async (t) => {
    const { dir, image, sum } = setup(t)
    const asRoot = process.getuid?.() === 0
    if (asRoot) {
      const setpriv = await run('sh', ['-c', 'command -v setpriv'])
      if (setpriv.code !== 0) return cannotRunPart(t, 'setpriv (util-linux) is needed to run the CLI as another user')
    }
    // A home the user owns: the store, the image and the export go there.
    const home = join(dir, 'home')
    nodeFs.mkdirSync(home)
    nodeFs.copyFileSync(image, join(home, 'root.sqfs'))
    if (asRoot) nodeFs.chownSync(home, 65534, 65534)
    const userImage = join(home, 'root.sqfs')
    const as = (args: string[], input?: string) =>
      // env -u: tap's process-info hook (in NODE_OPTIONS) would write into the checkout as the user.
      asRoot ? run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'env', '-u', 'NODE_OPTIONS', process.execPath, '--import', 'tsx', join(ROOT, 'lib', 'cli', 'bin.ts'), ...args], { cwd: home, input, timeoutMs: 120_000 }) : pagecow(args)
    const store = join(home, 'store')
    const steps: Array<[string[], RegExp, string?]> = [
      [['create', store, '--lower', userImage], /tree \(squashfs image\)/],
      [['read', store, '/etc/hosts'], /^127\.0\.0\.1 localhost\n$/],
      [['write', store, '/etc/hosts', '--offset', '0'], /^wrote 1 byte at offset 0\n$/, '#'],
      [['read', store, '/etc/hosts'], /^#27\.0\.0\.1 localhost\n$/],
      [['ls', store, '/usr/bin'], /tool-link/],
      [['fsck', store], /: clean/],
      [['export', store, join(home, 'out')], /^exported \d+ objects/m],
    ]
    for (const [args, says, input] of steps) {
      const r = await as(args, input)
      t.equal(r.code, 0, `${args[0]} as ${asRoot ? 'nobody' : 'this user'}: ${r.stderr}`)
      t.match(r.stdout, says, `${args[0]}: ${says}`)
    }
    if (asRoot) t.equal(nodeFs.statSync(join(store, 'pagecow.db')).uid, 65534, 'the store belongs to the user')
    t.equal(fileSha256(userImage), sum, 'the image file is unchanged')
  })
}
