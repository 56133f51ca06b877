// The mounts the FUSE speed cases compare, each mounted and unmounted by its own tool: `pagecow
// mount` (the dist/ build, a daemon as users start it), kernel overlayfs and fuse-overlayfs.
// A mount is fresh each time it is mounted: nothing of an earlier mount stays in its page cache.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import * as fs from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
/** The CLI measured: the build in dist/ (`npm run build`). */
export const CLI = join(ROOT, 'dist/cli/bin.js')
const CLOCK_TICKS = 100

/** One way of showing a lower: mounted on demand, its server process known while mounted. */
export interface Peer {
  name: string
  /** Where the lower's content appears while mounted. */
  root: string
  /** The serving process (null for the kernel's overlayfs). */
  pid: number | null
  mount(): Promise<void>
  unmount(): Promise<void>
}

/** Mount points live outside the scratch directories, so no `rm -r` of scratch enters a mount. */
let mountBase: string | undefined
const live = new Set<Peer>()
let exitHooked = false

export function mountPoint(name: string): string {
  mountBase ??= fs.mkdtempSync(join(tmpdir(), 'pagecow-bench-mnt-'))
  const dir = join(mountBase, name)
  fs.mkdirSync(dir, { recursive: true })
  hookExit()
  return dir
}

/** Remove the mount points (call when every peer is unmounted); one still mounted is left and named. */
export function removeMountPoints(log: (line: string) => void): void {
  if (!mountBase) return
  for (const p of live) log(`${p.root} is still mounted by ${p.name}; left in place`)
  for (const name of fs.readdirSync(mountBase)) {
    try {
      fs.rmdirSync(join(mountBase, name))
    } catch {
      // Still mounted (named above).
    }
  }
  try {
    fs.rmdirSync(mountBase)
    mountBase = undefined
  } catch {
    // Not empty.
  }
}

/** On any exit, detach what is still mounted (lazily: nothing waits). */
function hookExit(): void {
  if (exitHooked) return
  exitHooked = true
  process.on('exit', () => {
    for (const p of live) {
      try {
        execFileSync('umount', ['-l', p.root], { stdio: 'ignore' })
      } catch {
        // Already gone.
      }
    }
  })
}

/**
 * `pagecow mount STORE MNT` with `args` (e.g. `--writeback-cache`), as users run it: the CLI
 * starts a daemon and returns once the mount is usable. `env` is added to the daemon's.
 */
export function pagecowPeer(name: string, store: string, args: string[] = [], env: Record<string, string> = {}): Peer {
  const mnt = mountPoint(name)
  const p: Peer = {
    name,
    root: mnt,
    pid: null,
    async mount() {
      const { stdout } = await run(process.execPath, [CLI, 'mount', store, mnt, '--json', ...args], env)
      p.pid = (JSON.parse(stdout.trim().split('\n').pop()!) as { pid: number }).pid
      live.add(p)
    },
    async unmount() {
      if (p.pid === null) return
      const pid = p.pid
      await run(process.execPath, [CLI, 'umount', mnt])
      await waitGone(pid, 60_000)
      p.pid = null
      live.delete(p)
    },
  }
  return p
}

/** Kernel overlayfs over `lowerdir`, its upper and work directories in `scratch`. */
export function overlayPeer(name: string, lowerdir: string, scratch: string): Peer {
  const mnt = mountPoint(name)
  const upper = join(scratch, `${name}-upper`)
  const work = join(scratch, `${name}-work`)
  let mounted = false
  const p: Peer = {
    name,
    root: mnt,
    pid: null,
    async mount() {
      fs.mkdirSync(upper, { recursive: true })
      fs.mkdirSync(work, { recursive: true })
      await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lowerdir},upperdir=${upper},workdir=${work}`, mnt])
      mounted = true
      live.add(p)
    },
    async unmount() {
      if (!mounted) return
      await run('umount', [mnt])
      mounted = false
      live.delete(p)
    },
  }
  return p
}

/** fuse-overlayfs over `lowerdir` (in the foreground: a child of ours, so its pid is known). */
export function fuseOverlayPeer(name: string, lowerdir: string, scratch: string): Peer {
  const mnt = mountPoint(name)
  const upper = join(scratch, `${name}-upper`)
  const work = join(scratch, `${name}-work`)
  let child: ChildProcess | undefined
  const p: Peer = {
    name,
    root: mnt,
    pid: null,
    async mount() {
      fs.mkdirSync(upper, { recursive: true })
      fs.mkdirSync(work, { recursive: true })
      child = spawn('fuse-overlayfs', ['-f', '-o', `lowerdir=${lowerdir},upperdir=${upper},workdir=${work}`, mnt], { stdio: ['ignore', 'ignore', 'pipe'] })
      let stderr = ''
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
      const deadline = Date.now() + 30_000
      while (!isMounted(mnt, 'fuse.fuse-overlayfs')) {
        if (child.exitCode !== null) throw new Error(`fuse-overlayfs exited ${child.exitCode}: ${stderr.trim()}`)
        if (Date.now() > deadline) throw new Error(`fuse-overlayfs did not mount ${mnt} in 30 s: ${stderr.trim()}`)
        await sleep(20)
      }
      p.pid = child.pid ?? null
      live.add(p)
    },
    async unmount() {
      if (p.pid === null) return
      const pid = p.pid
      await run('fusermount3', ['-u', mnt])
      await waitGone(pid, 30_000)
      p.pid = null
      live.delete(p)
    },
  }
  return p
}

/** Run a program; its stdout and stderr, or an error naming its exit code and stderr. */
export function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.once('error', reject)
    child.once('close', (code) => (code === 0 ? resolve({ stdout, stderr }) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr.trim()}`))))
  })
}

export function have(tool: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** User + system CPU seconds of a process so far, all its threads; NaN once it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
  } catch {
    return NaN
  }
}

/** A lib/ source newer than the build in dist/, if any: the bench would measure old code. */
export function staleDist(): string | undefined {
  const built = fs.statSync(CLI).mtimeMs
  for (const entry of fs.readdirSync(join(ROOT, 'lib'), { withFileTypes: true, recursive: true })) {
    const path = join(entry.parentPath, entry.name)
    if (entry.isFile() && path.endsWith('.ts') && fs.statSync(path).mtimeMs > built) return path
  }
  return undefined
}

/** The 1-, 5- and 15-minute load averages, as text for a label. */
export function loadText(): string {
  return fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')
}

function isMounted(mnt: string, fsType: string): boolean {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((line) => {
      const [head, tail] = line.split(' - ')
      return head?.split(' ')[4] === mnt && tail?.split(' ')[0] === fsType
    })
}

async function waitGone(pid: number, ms: number): Promise<void> {
  const until = Date.now() + ms
  while (Date.now() < until) {
    try {
      process.kill(pid, 0)
    } catch {
      return
    }
    await sleep(10)
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}
