// `pagecow create` (and `demo`) on a kernel pseudo file system fail at once: Node's recursive mkdir
// under /proc retries ENOENT for ever, so without the check the command hung. Each case runs as a
// child process with a deadline; the file system named is the one `stat -f` names.
import { execFileSync, spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { pseudoFileSystemOf } from '../lib/cli/pseudo-fs.js'
import { childEnv } from './fixtures/child-env.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const BIN = join(ROOT, 'lib', 'cli', 'bin.ts')
const DEADLINE_MS = 60_000

/** What `stat -f` calls the file system holding `path` (an existing one). */
function statFsType(path: string): string {
  return execFileSync('stat', ['-f', '-c', '%T', path], { encoding: 'utf8' }).trim()
}

t.test('create and demo on proc, sysfs and devpts fail at once, naming the file system', async (t) => {
  const lower = join(t.testdir(), 'lower.img')
  writeFileSync(lower, Buffer.alloc(65536, 1))
  const cases: Array<[string[], string]> = [
    [['create', '/proc/pagecow-test/store', '--lower', lower], '/proc'],
    [['create', '/proc/self/pagecow-store', '--lower', lower], '/proc/self'],
    [['create', '/sys/pagecow-test', '--lower', lower], '/sys'],
    [['create', '/dev/pts/pagecow-test', '--lower', lower], '/dev/pts'],
    [['demo', '/proc/pagecow-demo'], '/proc'],
  ]
  for (const [args, existing] of cases) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', BIN, ...args], { cwd: ROOT, env: childEnv(), encoding: 'utf8', timeout: DEADLINE_MS })
    const what = args.slice(0, 2).join(' ')
    t.equal(r.signal, null, `${what}: ended by itself, within ${DEADLINE_MS / 1000} s`)
    t.equal(r.status, 1, `${what}: exit 1`)
    const fsType = statFsType(existing)
    t.match(r.stderr, new RegExp(`^pagecow: .* is on ${fsType}, a kernel pseudo file system; .* \\(EINVAL\\)\\n$`), `${what}: names ${fsType}`)
  }
})

t.test('real file systems are not refused', async (t) => {
  const dir = t.testdir()
  for (const path of [dir, join(dir, 'not', 'yet', 'made'), '/tmp', '/']) t.equal(pseudoFileSystemOf(path), undefined, `${path}: ${statFsType(path === join(dir, 'not', 'yet', 'made') ? dir : path)}`)
})
