// Scratch space for the benchmarks: os.tmpdir()/pagecow-bench-*. Finished fixtures are moved
// into a trash directory (a rename: instant) and the trash is deleted by one background `rm`
// when the run ends, because freeing scattered blocks can be very slow (ext4 mounted with
// `discard` waits for one device discard per extent: about 0.7 ms per scattered page measured
// here), and that must neither count in nor disturb the measurements.
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'

const PREFIX = 'pagecow-bench-'
const TRASH_PREFIX = `${PREFIX}trash-`
const made: string[] = []
let trash: string | undefined
let hooked = false

/** A new empty directory under os.tmpdir(), deleted after the run. */
export function scratchDir(tag = ''): string {
  hook()
  const dir = mkdtempSync(join(tmpdir(), `${PREFIX}${tag}${tag ? '-' : ''}`))
  made.push(dir)
  return dir
}

/**
 * Done with a fixture: move it out of the way now; it is deleted after the run. With `now`,
 * delete it at once: for fixtures that are cheap to free (few extents, or data never synced,
 * whose blocks delayed allocation has not placed yet).
 */
export function removeScratch(dir: string, options: { now?: boolean } = {}): void {
  const i = made.indexOf(dir)
  if (i >= 0) made.splice(i, 1)
  if (!existsSync(dir)) return
  if (options.now) {
    rmSync(dir, { recursive: true, force: true })
    return
  }
  trash ??= mkdtempSync(join(tmpdir(), TRASH_PREFIX))
  try {
    renameSync(dir, join(trash, basename(dir)))
  } catch {
    rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * Move every fixture left to the trash and start deleting the trash in the background (nice,
 * idle I/O class), detached, so the run ends now. Returns the trash directory, if any.
 */
export function removeAllScratch(): string | undefined {
  for (const dir of [...made]) removeScratch(dir)
  const dir = trash
  trash = undefined
  if (!dir) return undefined
  try {
    const child = spawn('sh', ['-c', 'nice -n 19 ionice -c 3 rm -rf -- "$0" 2>/dev/null || rm -rf -- "$0"', dir], {
      detached: true,
      stdio: 'ignore',
    })
    child.on('error', () => rmSync(dir, { recursive: true, force: true }))
    child.unref()
  } catch {
    rmSync(dir, { recursive: true, force: true })
  }
  return dir
}

/** Trash directories of earlier runs still being deleted (their I/O disturbs a new run). */
export function pendingTrash(): string[] {
  return readdirSync(tmpdir())
    .filter((name) => name.startsWith(TRASH_PREFIX))
    .map((name) => join(tmpdir(), name))
}

function hook(): void {
  if (hooked) return
  hooked = true
  process.on('exit', () => removeAllScratch())
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      removeAllScratch()
      process.exit(130)
    })
  }
}
