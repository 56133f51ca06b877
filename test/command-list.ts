// The command table: every row agrees with its command's module, and a run loads only what its
// command needs (--version nothing but a few small files, --help no library, an image command no
// tree, NBD or FUSE code). Start-up time itself is measured by `npm run bench -- cli-start`.
import { spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { PassThrough } from 'node:stream'
import t from 'tap'
import { COMMANDS } from '../lib/cli/command-list.js'
import type { CliIo } from '../lib/cli/cli-io.js'
import { runCli } from './fixtures/cli-io.js'
import { childEnv } from './fixtures/child-env.js'
import type { TapTest } from './fixtures/tap-test.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const BIN = join(ROOT, 'lib', 'cli', 'bin.ts')
const LOADED = join(ROOT, 'test', 'fixtures', 'loaded-modules.mjs')

const io: CliIo = { stdin: new PassThrough(), stdout: new PassThrough(), stderr: new PassThrough(), stdoutIsTTY: false, stderrIsTTY: false, env: {} }

t.test('each row names its command, arguments and summary as the command itself does', async (t) => {
  t.equal(new Set(COMMANDS.map((c) => c.name)).size, COMMANDS.length, 'no command listed twice')
  for (const entry of COMMANDS) {
    const cmd = (await entry.load())(io)
    t.equal(cmd.name(), entry.name, `${entry.name}: the module makes that command`)
    t.equal(cmd.summary(), entry.summary, `${entry.name}: summary`)
    const args = cmd.registeredArguments.map((a) => (a.required ? `<${a.name()}>` : `[${a.name()}]`)).join(' ')
    t.equal(args, entry.args, `${entry.name}: arguments`)
  }
})

t.test('pagecow --help lists every command with its arguments and summary', async (t) => {
  const help = await runCli(['--help'])
  t.equal(help.code, 0)
  for (const entry of COMMANDS) {
    t.match(help.stdout, new RegExp(`^  ${entry.name} \\[options\\] ${entry.args.replace(/[[\]]/g, '\\$&')} +${entry.summary.slice(0, 30).replace(/[()[\]]/g, '\\$&')}`, 'm'), entry.name)
  }
})

/** The files a `pagecow …` process (from source) loaded, relative to the checkout. */
function loadedBy(t: TapTest, args: string[], dir = t.testdir()): string[] {
  const out = join(dir, 'loaded.json')
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--import', LOADED, BIN, ...args], {
    cwd: ROOT,
    env: { ...childEnv(), LOADED_MODULES_OUT: out },
    encoding: 'utf8',
  })
  t.equal(r.status, 0, `pagecow ${args.join(' ')}: ${r.stderr}`)
  const paths = JSON.parse(readFileSync(out, 'utf8')) as string[]
  // tsx (and its esbuild) run the sources here; users run dist/ without them.
  return paths.map((p) => relative(ROOT, p)).filter((p) => !/^node_modules\/(tsx|esbuild|get-tsconfig|resolve-pkg-maps)\//.test(p))
}

/** pagecow's own dependencies (tap's hooks in the child load packages of their own). */
const DEPENDENCIES = new Set(Object.keys((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies))
const packageOf = (path: string) => /^node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path)?.[1]
/** Which of pagecow's dependencies `paths` include. */
const packages = (paths: string[]) => new Set(paths.map(packageOf).filter((p) => p !== undefined && DEPENDENCIES.has(p)))

t.test('--version loads the entry point and nothing else', async (t) => {
  const loaded = loadedBy(t, ['--version'])
  t.strictSame(packages(loaded), new Set(), 'none of the dependencies')
  t.strictSame(loaded.filter((p) => p.startsWith('lib/')).sort(), ['lib/cli/bin.ts', 'lib/cli/cli-io.ts', 'lib/cli/exit-code.ts', 'lib/cli/main.ts', 'lib/version.ts'])
})

t.test('--help loads commander and the command table, no command and no library', async (t) => {
  const loaded = loadedBy(t, ['--help'])
  t.strictSame(packages(loaded), new Set(['commander']))
  t.strictSame(loaded.filter((p) => p.startsWith('lib/cli/commands/')), [], 'no command module')
  t.strictSame(loaded.filter((p) => p.startsWith('lib/') && !p.startsWith('lib/cli/')).sort(), ['lib/errors.ts', 'lib/version.ts'], 'of the library, only the error type and the version')
})

t.test('an image command loads its own module and the image code only', async (t) => {
  const dir = t.testdir()
  const lower = join(dir, 'lower.img')
  writeFileSync(lower, Buffer.alloc(1 << 20, 1))
  t.equal((await runCli(['create', join(dir, 'store'), '--lower', lower])).code, 0)
  const loaded = loadedBy(t, ['map', join(dir, 'store'), '--output=json'], dir)
  t.strictSame(loaded.filter((p) => p.startsWith('lib/cli/commands/')), ['lib/cli/commands/map.ts'], 'one command module')
  t.strictSame(loaded.filter((p) => /^lib\/(tree|nbd|fuse)\//.test(p)), [], 'no tree, NBD or FUSE code')
  const pkgs = packages(loaded)
  t.notOk(pkgs.has('cli-progress'), 'no cli-progress (no progress bar for a map)')
  // fs-native-extensions: the OFD lock that prepares SQLite's shared-memory file (lib/store/shared-memory.ts).
  for (const needed of ['zod', 'better-sqlite3', 'roaring', 'fs-ext', 'fs-native-extensions']) t.ok(pkgs.has(needed), `${needed}, which the map needs`)
})

t.test('a tree command loads no NBD or FUSE code', async (t) => {
  const dir = t.testdir()
  const lower = join(dir, 'tree')
  mkdirSync(join(lower, 'etc'), { recursive: true })
  writeFileSync(join(lower, 'etc', 'hosts'), 'localhost\n')
  t.equal((await runCli(['create', join(dir, 'store'), '--lower', lower])).code, 0)
  const loaded = loadedBy(t, ['ls', join(dir, 'store'), '/etc'], dir)
  t.strictSame(loaded.filter((p) => p.startsWith('lib/cli/commands/')), ['lib/cli/commands/ls.ts'], 'one command module')
  t.strictSame(loaded.filter((p) => /^lib\/(nbd|fuse)\/|^lib\/image\/(export|fsck)\.ts$/.test(p)), [], 'no NBD, FUSE, image export or fsck code')
})
