// Bad input to every command: the exit code (1 the command failed, 2 the command line is wrong,
// 4 fsck found problems), the error code, one line in the CLI's words (never the API's names, zod's
// or Node's raw system error text), and with --json the same error as JSON on stdout.
import { mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { ImageStore } from '../lib/index.js'
import { runCli, type CliRun } from './fixtures/cli-io.js'
import { makeSparseLower } from './fixtures/cli-lower.js'
import type { TapTest } from './fixtures/tap-test.js'

const MiB = 1024 * 1024

interface Paths {
  dir: string
  /** An image store over a 4 MiB sparse lower. */
  image: string
  lower: string
  /** A tree store over: /etc/hosts, /d/f (a non-empty directory), /e (an empty one). */
  tree: string
  treeLower: string
  /** A directory that is not a store, and a plain file. */
  plain: string
  file: string
}

async function fixture(t: TapTest): Promise<Paths> {
  const dir = t.testdir()
  const lower = join(dir, 'lower.img')
  makeSparseLower(lower, 4 * MiB, [[0, 64 * 1024]])
  const treeLower = join(dir, 'root')
  for (const d of ['etc', 'd', 'e']) mkdirSync(join(treeLower, d), { recursive: true })
  writeFileSync(join(treeLower, 'etc', 'hosts'), '127.0.0.1 localhost\n')
  writeFileSync(join(treeLower, 'd', 'f'), 'f\n')
  const plain = join(dir, 'plain')
  mkdirSync(plain)
  const file = join(dir, 'file.txt')
  writeFileSync(file, 'text\n')
  const p = { dir, image: join(dir, 'image'), lower, tree: join(dir, 'tree'), treeLower, plain, file }
  for (const [store, of] of [[p.image, lower], [p.tree, treeLower]]) {
    const r = await runCli(['create', store!, '--lower', of!])
    t.equal(r.code, 0, r.stderr)
  }
  return p
}

interface Row {
  name: string
  argv: (p: Paths) => string[]
  exit: 1 | 2 | 4
  code: string
  /** What the message must say (in the CLI's words). */
  says?: RegExp
  stdin?: string
  /** Set things up first (the row runs on a fresh fixture); returns the undo, if any. */
  arrange?: (p: Paths) => Promise<(() => Promise<void>) | void> | void
}

const ROWS: Row[] = [
  // The command line itself: exit 2.
  { name: 'no command', argv: () => [], exit: 2, code: 'EINVAL' },
  { name: 'an unknown command', argv: () => ['frobnicate'], exit: 2, code: 'EINVAL', says: /unknown command 'frobnicate'/ },
  { name: 'an unknown option', argv: (p) => ['inspect', p.image, '--bogus'], exit: 2, code: 'EINVAL', says: /unknown option '--bogus'/ },
  { name: 'a misspelled option', argv: (p) => ['map', p.image, '--ofset', '0'], exit: 2, code: 'EINVAL', says: /did you mean --offset\?/ },
  { name: 'a missing argument', argv: () => ['stat'], exit: 2, code: 'EINVAL', says: /missing required argument 'STORE'/ },
  { name: 'an extra argument', argv: (p) => ['flush', p.image, 'extra'], exit: 2, code: 'EINVAL' },
  { name: 'a missing required option', argv: (p) => ['create', join(p.dir, 'new')], exit: 2, code: 'EINVAL', says: /--lower/ },
  { name: 'an option without its value', argv: (p) => ['zero', p.image, '--offset'], exit: 2, code: 'EINVAL' },
  { name: 'create: an empty STORE', argv: (p) => ['create', '', '--lower', p.lower], exit: 2, code: 'EINVAL', says: /STORE: the store directory is required/ },
  { name: 'create: a page size that is no power of two', argv: (p) => ['create', join(p.dir, 'new'), '--lower', p.lower, '--page-size', '3000'], exit: 2, code: 'EINVAL', says: /--page-size: must be a power of two from 512 B to 1\.0 MiB/ },
  { name: 'create: a page size too big', argv: (p) => ['create', join(p.dir, 'new'), '--lower', p.lower, '--page-size', '2M'], exit: 2, code: 'EINVAL', says: /--page-size/ },
  { name: 'create: an unknown lower format', argv: (p) => ['create', join(p.dir, 'new'), '--lower', p.lower, '--lower-format', 'qcow2'], exit: 2, code: 'EINVAL', says: /--lower-format: must be one of raw, directory, squashfs/ },
  { name: 'inspect: width 0', argv: (p) => ['inspect', p.image, '--width', '0'], exit: 2, code: 'EINVAL', says: /--width: must be at least 1/ },
  { name: 'inspect: width too big', argv: (p) => ['inspect', p.image, '--width', '5000'], exit: 2, code: 'EINVAL', says: /--width: must be at most 4096/ },
  { name: 'inspect: width not a number', argv: (p) => ['inspect', p.image, '--width', 'wide'], exit: 2, code: 'EINVAL', says: /--width: must be a whole number/ },
  { name: 'map: an unknown output format', argv: (p) => ['map', p.image, '--output', 'xml'], exit: 2, code: 'EINVAL', says: /--output: must be "json" or "human"/ },
  { name: 'map: --json with --output=human', argv: (p) => ['map', p.image, '--json', '--output=human'], exit: 2, code: 'EINVAL', says: /contradict/ },
  { name: 'read: a negative offset', argv: (p) => ['read', p.image, '--offset', '-1', '--length', '1'], exit: 2, code: 'EINVAL', says: /--offset: "-1" is negative/ },
  { name: 'read: a size with an unknown suffix', argv: (p) => ['read', p.image, '--offset', '0', '--length', '4q'], exit: 2, code: 'EINVAL', says: /--length: .*unknown suffix/ },
  { name: 'read: an image without --length', argv: (p) => ['read', p.image, '--offset', '0'], exit: 2, code: 'EINVAL', says: /--length/ },
  { name: 'write: an empty offset', argv: (p) => ['write', p.image, '--offset', ''], exit: 2, code: 'EINVAL', stdin: 'x' },
  { name: 'zero: a fractional length', argv: (p) => ['zero', p.image, '--offset', '0', '--length', '0.5M'], exit: 2, code: 'EINVAL', says: /whole number of bytes/ },
  { name: 'discard: a garbage offset', argv: (p) => ['discard', p.image, '--offset', 'soon', '--length', '1'], exit: 2, code: 'EINVAL', says: /--offset: "soon" is not a size/ },
  { name: 'truncate: a negative size', argv: (p) => ['truncate', p.image, '--size', '-4k'], exit: 2, code: 'EINVAL' },
  { name: 'serve: a port out of range', argv: (p) => ['serve', p.image, '--port', '65536'], exit: 2, code: 'EINVAL', says: /--port: must be at most 65535/ },
  { name: 'serve: socket and port', argv: (p) => ['serve', p.image, '--socket', join(p.dir, 's'), '--port', '1'], exit: 2, code: 'EINVAL', says: /not both/ },
  { name: 'mount: max-nodes too small', argv: (p) => ['mount', p.tree, p.plain, '--max-nodes', '3'], exit: 2, code: 'EINVAL', says: /--max-nodes: must be at least 64/ },
  { name: 'umount: a bad --wait-ms', argv: (p) => ['umount', p.plain, '--wait-ms', 'soon'], exit: 2, code: 'EINVAL', says: /--wait-ms: must be a whole number/ },
  { name: 'mkdir: a mode that is not octal', argv: (p) => ['mkdir', p.tree, '/x', '--mode', '999'], exit: 2, code: 'EINVAL', says: /--mode: must be octal/ },
  { name: 'chmod: a mode chmod(1) refuses', argv: (p) => ['chmod', p.tree, 'u+q', '/etc/hosts'], exit: 2, code: 'EINVAL', says: /MODE: / },
  { name: 'mv: --no-clobber with --exchange', argv: (p) => ['mv', p.tree, '/etc/hosts', '/x', '-n', '--exchange'], exit: 2, code: 'EINVAL', says: /exclude each other/ },

  // Right command lines that fail: exit 1.
  { name: 'a store that does not exist', argv: (p) => ['inspect', join(p.dir, 'nowhere')], exit: 1, code: 'ENOENT', says: /no pagecow store at/ },
  { name: 'a directory that is not a store', argv: (p) => ['map', p.plain], exit: 1, code: 'ENOENT' },
  { name: 'flush of no store', argv: (p) => ['flush', join(p.dir, 'nowhere')], exit: 1, code: 'ENOENT' },
  { name: 'fsck of no store', argv: (p) => ['fsck', join(p.dir, 'nowhere')], exit: 1, code: 'ENOENT' },
  { name: 'create: the lower does not exist', argv: (p) => ['create', join(p.dir, 'new'), '--lower', join(p.dir, 'missing.img')], exit: 1, code: 'ENOENT', says: /the lower .* does not exist/ },
  { name: 'create: over a store', argv: (p) => ['create', p.image, '--lower', p.lower], exit: 1, code: 'EEXIST', says: /is not empty/ },
  { name: 'create: STORE is a file', argv: (p) => ['create', p.file, '--lower', p.lower], exit: 1, code: 'EEXIST', says: /exists and is not a directory/ },
  { name: 'create: --lower-format raw on a directory', argv: (p) => ['create', join(p.dir, 'new'), '--lower', p.treeLower, '--lower-format', 'raw'], exit: 1, code: 'EINVAL', says: /is a directory/ },
  {
    name: 'write: a second writer',
    argv: (p) => ['write', p.image, '--offset', '0'],
    exit: 1,
    code: 'EBUSY',
    stdin: 'x',
    says: /open for writing by pid \d+/,
    arrange: async (p) => {
      const holder = await ImageStore.open(p.image)
      return () => holder.close()
    },
  },
  { name: 'read: past the 4 PiB a store holds', argv: (p) => ['read', p.image, '--offset', '4P', '--length', '1'], exit: 1, code: 'EFBIG', says: /--offset \+ --length reach .* past the 4\.0 PiB a store can hold/ },
  { name: 'truncate: past the 4 PiB a store holds', argv: (p) => ['truncate', p.image, '--size', '5P'], exit: 1, code: 'EFBIG', says: /--size is 5629499534213120 bytes \(5\.0 PiB\)/ },
  { name: 'zero: past the 4 PiB a store holds', argv: (p) => ['zero', p.image, '--offset', '0', '--length', '5P'], exit: 1, code: 'EFBIG', says: /--offset \+ --length reach/ },
  { name: 'write: --input does not exist', argv: (p) => ['write', p.image, '--offset', '0', '--input', join(p.dir, 'missing.bin')], exit: 1, code: 'ENOENT', says: /opening .*missing\.bin: no such file or directory/ },
  { name: 'write: --input is a directory', argv: (p) => ['write', p.image, '--offset', '0', '--input', p.plain], exit: 1, code: 'EISDIR' },
  { name: 'read: --output in a missing directory', argv: (p) => ['read', p.image, '--offset', '0', '--length', '1', '--output', join(p.dir, 'no', 'out')], exit: 1, code: 'ENOENT' },
  { name: 'read: --output over the lower', argv: (p) => ['read', p.image, '--offset', '0', '--length', '1', '--output', p.lower], exit: 1, code: 'EINVAL' },
  { name: 'export: over the lower', argv: (p) => ['export', p.image, p.lower, '--force'], exit: 1, code: 'EINVAL' },
  { name: 'export: over a file without --force', argv: (p) => ['export', p.image, p.file], exit: 1, code: 'EEXIST', says: /pass --force/ },
  { name: 'export: a tree into a file', argv: (p) => ['export', p.tree, p.file], exit: 1, code: 'EEXIST' },
  { name: 'export: --force on a tree', argv: (p) => ['export', p.tree, join(p.dir, 'out'), '--force'], exit: 1, code: 'EINVAL', says: /--force is for image stores/ },
  { name: 'demo: into a file', argv: (p) => ['demo', p.file], exit: 1, code: 'EEXIST', says: /exists and is not a directory/ },
  { name: 'demo: into a non-empty directory', argv: (p) => ['demo', p.treeLower], exit: 1, code: 'EEXIST', says: /is not empty/ },
  { name: 'serve: a tree store', argv: (p) => ['serve', p.tree], exit: 1, code: 'EINVAL', says: /only image stores/ },
  { name: 'mount: the mount point does not exist', argv: (p) => ['mount', p.tree, join(p.dir, 'nowhere')], exit: 1, code: 'ENOENT' },
  { name: 'umount: not a pagecow mount', argv: (p) => ['umount', p.plain], exit: 1, code: 'EINVAL', says: /is not a pagecow mount/ },
  { name: 'ls: an image store', argv: (p) => ['ls', p.image], exit: 1, code: 'EINVAL', says: /works on tree stores/ },
  { name: 'ls: through a file', argv: (p) => ['ls', p.tree, '/etc/hosts/x'], exit: 1, code: 'ENOTDIR', says: /^pagecow: ls: / },
  { name: 'stat: a missing path', argv: (p) => ['stat', p.tree, '/nope'], exit: 1, code: 'ENOENT', says: /^pagecow: stat: \/nope does not exist/ },
  { name: 'stat: a path with ..', argv: (p) => ['stat', p.tree, '/etc/../x'], exit: 1, code: 'EINVAL' },
  { name: 'read: a directory', argv: (p) => ['read', p.tree, '/etc'], exit: 1, code: 'EISDIR', says: /read: \/etc is a directory; list it with pagecow ls/ },
  { name: 'read: a missing file', argv: (p) => ['read', p.tree, '/nope'], exit: 1, code: 'ENOENT', says: /^pagecow: read: \/nope does not exist/ },
  { name: 'read: a tree without PATH', argv: (p) => ['read', p.tree], exit: 1, code: 'EINVAL', says: /name a file in it/ },
  { name: 'read: PATH on an image', argv: (p) => ['read', p.image, '/x', '--offset', '0', '--length', '1'], exit: 1, code: 'EINVAL', says: /has no paths/ },
  { name: 'write: into a directory', argv: (p) => ['write', p.tree, '/etc', '--offset', '0'], exit: 1, code: 'EISDIR', stdin: 'x', says: /write: \/etc is a directory/ },
  { name: 'truncate: a directory', argv: (p) => ['truncate', p.tree, '/d', '--size', '1'], exit: 1, code: 'EISDIR' },
  { name: 'zero: a missing file', argv: (p) => ['zero', p.tree, '/nope', '--offset', '0', '--length', '1'], exit: 1, code: 'ENOENT' },
  { name: 'discard: a directory', argv: (p) => ['discard', p.tree, '/d', '--offset', '0', '--length', '1'], exit: 1, code: 'EISDIR' },
  { name: 'map: a directory', argv: (p) => ['map', p.tree, '/d'], exit: 1, code: 'EISDIR', says: /^pagecow: map: / },
  { name: 'inspect: PATH on an image', argv: (p) => ['inspect', p.image, '/x'], exit: 1, code: 'EINVAL' },
  { name: 'mkdir: it exists', argv: (p) => ['mkdir', p.tree, '/etc'], exit: 1, code: 'EEXIST' },
  { name: 'mkdir: the parent does not exist', argv: (p) => ['mkdir', p.tree, '/a/b'], exit: 1, code: 'ENOENT' },
  { name: 'rmdir: not empty', argv: (p) => ['rmdir', p.tree, '/d'], exit: 1, code: 'ENOTEMPTY' },
  { name: 'rmdir: a file', argv: (p) => ['rmdir', p.tree, '/etc/hosts'], exit: 1, code: 'ENOTDIR' },
  { name: 'rm: a directory without -r', argv: (p) => ['rm', p.tree, '/d'], exit: 1, code: 'EISDIR', says: /rm: \/d is a directory; remove it and everything in it with -r/ },
  { name: 'rm: a missing path', argv: (p) => ['rm', p.tree, '/nope'], exit: 1, code: 'ENOENT' },
  { name: 'mv: the source does not exist', argv: (p) => ['mv', p.tree, '/nope', '/x'], exit: 1, code: 'ENOENT', says: /^pagecow: mv: \/nope does not exist/ },
  { name: 'mv: a directory into itself', argv: (p) => ['mv', p.tree, '/d', '/d/sub'], exit: 1, code: 'EINVAL', says: /^pagecow: mv: / },
  { name: 'mv: -n over an existing name', argv: (p) => ['mv', p.tree, '/d', '/e', '-n'], exit: 1, code: 'EEXIST' },
  { name: 'chmod: a missing path', argv: (p) => ['chmod', p.tree, '644', '/nope'], exit: 1, code: 'ENOENT', says: /^pagecow: chmod: \/nope does not exist/ },
  { name: 'symlink: the name exists', argv: (p) => ['symlink', p.tree, 'x', '/etc'], exit: 1, code: 'EEXIST' },
  {
    name: 'a changed lower',
    argv: (p) => ['inspect', p.image],
    exit: 1,
    code: 'ESTALE',
    arrange: (p) => utimesSync(p.lower, new Date(2000, 0, 1), new Date(2000, 0, 1)),
  },
  // fsck ran and found problems: exit 4.
  {
    name: 'fsck: the lower changed',
    argv: (p) => ['fsck', p.image],
    exit: 4,
    code: 'ESTALE',
    says: /is not clean: 1 problem/,
    arrange: (p) => utimesSync(p.lower, new Date(2000, 0, 1), new Date(2000, 0, 1)),
  },
]

/** Words a person never typed: the API's and libraries' names for things, Node's raw error text. */
const NOT_CLI_WORDS: Array<[RegExp, string]> = [
  [/\w\(\)/, 'a function call'],
  [/recursive: true|pageSize|readOnly|autoFlushMs|noReplace|overwrite|threadPool/, "an API option's name"],
  [/offset \+ length|\blength must|\boffset must/, "the API's argument names"],
  [/Too (small|big)|[Ee]xpected (string|number|boolean)|Invalid (input|option|string)/, "zod's words"],
  [/\bE[A-Z]{2,}: [a-z]/, "Node's raw system error"],
  [/, (mkdir|open|read|write|lstat|stat|scandir|rmdir|unlink|rename) '/, "a system call's name"],
  [/\n\s+at /, 'a stack trace'],
]

function checkRun(t: TapTest, row: Row, run: CliRun, json: boolean): void {
  t.equal(run.code, row.exit, `exit ${row.exit}`)
  const lines = run.stderr.trimEnd().split('\n')
  if (row.exit === 2 && lines[0]?.startsWith('Usage:')) {
    t.pass('no command: the help, on stderr') // `pagecow` alone prints its help as the error
    return
  }
  t.match(lines[0], new RegExp(`^pagecow: .+ \\(${row.code}\\)$`), `one line naming ${row.code}`)
  t.equal(lines.length, row.exit === 2 ? 2 : 1, row.exit === 2 ? 'and a hint to the help' : 'and nothing else')
  if (row.exit === 2) t.match(lines[1], /^Try 'pagecow( \w+)? --help'\.$/)
  if (row.says) t.match(lines[0], row.says, 'says what is wrong')
  for (const [words, what] of NOT_CLI_WORDS) t.notMatch(run.stderr, words, `no ${what}`)
  if (!json) {
    if (row.exit !== 4) t.equal(run.stdout, '', 'nothing on stdout')
    return
  }
  if (row.exit === 4) {
    t.match(JSON.parse(run.stdout), { clean: false, problems: [{ code: row.code }] }, 'the report is the JSON (one document)')
    return
  }
  const printed = JSON.parse(run.stdout) as { error: { code: string; message: string } }
  t.strictSame(Object.keys(printed), ['error'])
  t.equal(printed.error.code, row.code, 'the JSON error has the code')
  t.equal(`pagecow: ${printed.error.message} (${row.code})`, lines[0], 'and the message of the stderr line')
}

/** Commands that take --json: their errors are printed as JSON too. */
const TAKES_JSON = new Set(['create', 'inspect', 'map', 'fsck', 'export', 'serve', 'mount', 'umount', 'ls', 'stat'])

t.test('bad input to every command: exit code, error code, one line in the CLI words', async (t) => {
  // A failed command changes nothing, so the rows share one fixture; a row that arranges
  // trouble gets its own.
  const shared = await fixture(t)
  for (const row of ROWS) {
    await t.test(row.name, async (t) => {
      const p = row.arrange ? await fixture(t) : shared
      const undo = await row.arrange?.(p)
      const argv = row.argv(p)
      try {
        checkRun(t, row, await runCli(argv, row.stdin === undefined ? {} : { stdin: row.stdin }), argv.includes('--json'))
        if (TAKES_JSON.has(argv[0] ?? '') && !argv.includes('--json')) {
          await t.test('with --json', async (t) => checkRun(t, row, await runCli([...argv, '--json'], row.stdin === undefined ? {} : { stdin: row.stdin }), true))
        }
      } finally {
        await undo?.()
      }
    })
  }
  // Failed commands changed nothing.
  for (const store of [shared.image, shared.tree]) t.equal((await runCli(['fsck', store])).code, 0, `${store}: still clean`)
  t.match(JSON.parse((await runCli(['inspect', shared.image, '--json'])).stdout), { info: { pages: { data: 0, zero: 0 }, size: 4 * MiB } }, 'the image is as created')
  t.strictSame(JSON.parse((await runCli(['inspect', shared.tree, '--json'])).stdout).changes, [], 'the tree has no changes')
})

t.test('--json on any command prints a usage error as JSON too', async (t) => {
  const run = await runCli(['flush', '/x', '--json'])
  t.equal(run.code, 2)
  t.match(JSON.parse(run.stdout), { error: { code: 'EINVAL', message: "unknown option '--json'" } })
})

t.test('map --output=json, also with a space, asks for JSON errors', async (t) => {
  for (const argv of [['map', '/nowhere', '--output=json'], ['map', '/nowhere', '--output', 'json']]) {
    const run = await runCli(argv)
    t.equal(run.code, 1)
    t.match(JSON.parse(run.stdout), { error: { code: 'ENOENT' } }, argv.join(' '))
  }
  const file = await runCli(['read', '/nowhere', '--offset', '0', '--length', '1', '--output', 'json'])
  t.equal(file.stdout, '', "read's --output names a file: no JSON")
})

t.test('--help and the README document the exit codes', async (t) => {
  const help = await runCli(['--help'])
  for (const [code, what] of [['0', 'success'], ['1', 'failed'], ['2', 'usage error'], ['4', 'fsck found problems']]) {
    t.match(help.stdout, new RegExp(`^  ${code}  .*${what}`, 'm'), `--help: ${code}`)
  }
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  for (const code of ['0', '1', '2', '4']) t.match(readme, new RegExp(`^\\| ${code} \\|`, 'm'), `README: exit code ${code}`)
})
