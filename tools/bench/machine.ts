// What the benchmarks ran on: printed at the top of a run and stored in the results file.
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import * as os from 'node:os'
import { join } from 'node:path'

export interface Machine {
  cpu: string
  cores: number
  ramBytes: number
  node: string
  kernel: string
  platform: string
  tmpdir: string
  tmpdirFilesystem: string
  qemu: string | null
  /** The library measured: commit, and whether lib/ had uncommitted changes. */
  source: string
}

export function describeMachine(): Machine {
  const tmp = os.tmpdir()
  return {
    cpu: os.cpus()[0]?.model.trim() ?? 'unknown',
    cores: os.availableParallelism(),
    ramBytes: os.totalmem(),
    node: process.version,
    kernel: os.release(),
    platform: `${os.platform()} ${os.arch()}`,
    tmpdir: tmp,
    tmpdirFilesystem: filesystemOf(tmp),
    qemu: firstLine('qemu-io', ['--version']),
    source: describeSource(),
  }
}

export function formatMachine(m: Machine): string {
  return [
    `CPU:     ${m.cpu} (${m.cores} cores available)`,
    `RAM:     ${(m.ramBytes / 2 ** 30).toFixed(1)} GiB`,
    `Node:    ${m.node} on ${m.platform}, kernel ${m.kernel}`,
    `Temp:    ${m.tmpdir} (${m.tmpdirFilesystem})`,
    `qemu:    ${m.qemu ?? 'not installed'}`,
    `Source:  ${m.source}`,
  ].join('\n')
}

/** "ext4 on /dev/vda mounted at / (rw,relatime,discard)" from df and /proc/mounts. */
function filesystemOf(dir: string): string {
  const line = lastLine('df', ['-P', '-T', dir])
  if (!line) return 'unknown filesystem'
  const [device, type, , , , , mount] = line.split(/\s+/)
  return `${type} on ${device} mounted at ${mount}${mountOptions(mount) ?? ''}`
}

/** The mount options (`discard` matters: freeing blocks then waits for the device). */
function mountOptions(mount: string | undefined): string | undefined {
  try {
    const entry = readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' '))
      .filter((f) => f[1] === mount)
      .pop()
    return entry?.[3] ? ` (${entry[3]})` : undefined
  } catch {
    return undefined
  }
}

/** The commit measured, and whether lib/ differs from it (read-only git queries). */
function describeSource(): string {
  const root = new URL('../..', import.meta.url).pathname
  const head = output('git', ['-C', root, 'rev-parse', '--short', 'HEAD'])?.trim()
  if (!head) return 'not a git checkout'
  const dirty = output('git', ['-C', root, 'status', '--porcelain', '--', 'lib'])?.trim()
  return `commit ${head}${dirty ? `, with uncommitted changes in lib/ (lib/ content hash ${hashTree(join(root, 'lib'))})` : ''}`
}

/** A short hash of every file under `dir` (names and bytes), to tell two working trees apart. */
function hashTree(dir: string): string {
  const hash = createHash('sha256')
  const walk = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const path = join(d, entry.name)
      if (entry.isDirectory()) walk(path)
      else if (entry.isFile()) hash.update(path.slice(dir.length)).update(readFileSync(path))
    }
  }
  walk(dir)
  return hash.digest('hex').slice(0, 12)
}

function firstLine(cmd: string, args: string[]): string | null {
  return output(cmd, args)?.split('\n')[0]?.trim() ?? null
}

function lastLine(cmd: string, args: string[]): string | null {
  return output(cmd, args)?.trim().split('\n').pop() ?? null
}

function output(cmd: string, args: string[]): string | null {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
  } catch {
    return null
  }
}
