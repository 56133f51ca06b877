// The NBD servers the benchmark compares, each its own process on a Unix socket over the same
// lower: `pagecow serve` and nbdkit's cow filter with 4 KiB blocks (the peer issue 11 names:
// `nbdkit --filter=cow file LOWER cow-block-size=4096`).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
/** USER_HZ: /proc reports CPU time in these. */
const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK']).stdout?.toString().trim()) || 100

export interface Peer {
  name: string
  uri: string
  /** Its Unix socket. */
  socket: string
  /** The server process, for its CPU time. */
  pid: number
  /** Bytes its upper (overlay) takes on disk now. */
  space(): number
  stop(): Promise<void>
}

export function have(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0
}

/** User + system CPU seconds of a process so far (Linux /proc), all threads together. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
  } catch {
    return Number.NaN
  }
}

/** Spawn a long-running server; resolves once its Unix socket exists. */
async function startProcess(cmd: string, args: string[], socket: string, env?: NodeJS.ProcessEnv): Promise<ChildProcess> {
  const child = spawn(cmd, args, { env: env ?? process.env, stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()))
  const deadline = Date.now() + 60_000
  while (!existsSync(socket)) {
    if (child.exitCode !== null) throw new Error(`${cmd} exited: ${stderr}`)
    if (Date.now() > deadline) throw new Error(`${cmd} did not listen on ${socket} in 60 s: ${stderr}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  return child
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((r) => child.once('exit', r))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
  await exited
  clearTimeout(timer)
}

function allocated(path: string): number {
  return statSync(path).blocks * 512
}

/**
 * `pagecow serve` (the CLI, as users run it) over a new store on `lower`; `env` adds to its
 * environment (experiments).
 */
export async function startPagecow(dir: string, lower: string, env: NodeJS.ProcessEnv = {}): Promise<Peer> {
  const store = join(dir, 'pagecow-store')
  const socket = join(dir, 'pagecow.sock')
  const cli = ['--import', 'tsx', join(ROOT, 'lib/cli/bin.ts')]
  const created = spawnSync(process.execPath, [...cli, 'create', store, '--lower', lower], { stdio: ['ignore', 'ignore', 'pipe'] })
  if (created.status !== 0) throw new Error(`pagecow create failed: ${created.stderr.toString()}`)
  const child = await startProcess(process.execPath, [...cli, 'serve', store, '--socket', socket], socket, { ...process.env, ...env })
  return {
    name: 'pagecow',
    socket,
    pid: child.pid as number,
    uri: `nbd+unix:///?socket=${socket}`,
    space: () => readdirSync(store).reduce((n, f) => n + allocated(join(store, f)), 0),
    stop: () => stopProcess(child),
  }
}

/** nbdkit's cow filter over the file plugin, 4 KiB cow blocks, its overlay under `dir`. */
export async function startNbdkit(dir: string, lower: string): Promise<Peer> {
  const socket = join(dir, 'nbdkit.sock')
  const overlayDir = join(dir, 'nbdkit-tmp')
  mkdirSync(overlayDir)
  // The cow filter keeps its overlay in an unlinked file under TMPDIR: found again via /proc.
  const child = await startProcess('nbdkit', ['-f', '-U', socket, '--filter=cow', 'file', lower, 'cow-block-size=4096'], socket, { ...process.env, TMPDIR: overlayDir })
  return {
    name: 'nbdkit cow',
    socket,
    pid: child.pid as number,
    uri: `nbd+unix:///?socket=${socket}`,
    space: () => {
      const fds = `/proc/${child.pid}/fd`
      let total = 0
      for (const fd of readdirSync(fds)) {
        try {
          if (readlinkSync(join(fds, fd)).startsWith(overlayDir)) total += statSync(join(fds, fd)).blocks * 512
        } catch {
          // An fd closed while we looked.
        }
      }
      return total
    },
    stop: () => stopProcess(child),
  }
}

/** The floor of a Node NBD server (tools/bench/nbd-floor-serve.ts): no store, every request answered at once. */
export async function startFloor(dir: string, size: number): Promise<Peer> {
  const socket = join(dir, 'floor.sock')
  const child = await startProcess(process.execPath, ['--import', 'tsx', join(ROOT, 'tools/bench/nbd-floor-serve.ts'), '--size', String(size), '--socket', socket], socket)
  return { name: 'node floor', socket, pid: child.pid as number, uri: `nbd+unix:///?socket=${socket}`, space: () => 0, stop: () => stopProcess(child) }
}
