// An export is never half done: it is written under a temporary name beside its output and
// renamed into place only once complete and synced. A killed export leaves at most a hidden
// temporary (each run picks a new name, so a leftover never confuses the next), never a file at
// the output's name that looks finished.
import { randomBytes } from 'node:crypto'
import { basename, dirname, resolve } from 'node:path'
import * as fs from '../fs.js'
import { fromSystemError, PagecowError } from '../errors.js'

/** What a temporary beside `output` is named: hidden, and saying whose it is. */
export function temporaryBeside(output: string): string {
  const path = resolve(output)
  return `${dirname(path)}/.${basename(path)}.pagecow-export-${process.pid}-${randomBytes(4).toString('hex')}`
}

/** Whether `name` is such a temporary (for tools and tests that look for leftovers). */
export function isExportTemporary(name: string): boolean {
  return /^\..*\.pagecow-export-\d+-[0-9a-f]{8}$/.test(name)
}

/**
 * Give the finished file `temp` the name `output`: replacing what is there when `overwrite`,
 * else only if nothing is (a hard link, which fails if the name exists, then the temporary goes).
 * The directory is synced, so the name survives a power cut.
 */
export function publishFile(temp: string, output: string, overwrite: boolean): void {
  try {
    if (overwrite) fs.renameSync(temp, output)
    else {
      try {
        fs.linkSync(temp, output)
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        // A file system without hard links: check, then rename (a name made in between is lost to it).
        if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw err
        if (fs.existsSync(output)) throw Object.assign(new Error(`EEXIST: ${output} exists`), { code: 'EEXIST' })
        fs.renameSync(temp, output)
      }
      fs.rmSync(temp, { force: true })
    }
    fs.syncDirectory(dirname(resolve(output)))
  } catch (err) {
    const e = fromSystemError(err, `renaming the finished export to ${output}`)
    if (e.code === 'EEXIST') throw new PagecowError('EEXIST', `${output} exists; choose another name or overwrite it`, { cause: err })
    throw e
  }
}

/** Rename the finished directory `temp` to `outdir`, which is missing or an empty directory. */
export function publishDirectory(temp: string, outdir: string): void {
  try {
    fs.renameSync(temp, outdir)
    fs.syncDirectory(dirname(resolve(outdir)))
  } catch (err) {
    const e = fromSystemError(err, `renaming the finished export to ${outdir}`)
    if (e.code === 'ENOTEMPTY' || e.code === 'EEXIST') throw new PagecowError('EEXIST', `${outdir} is not empty (something was put there during the export); export into a new or empty directory`, { cause: err })
    throw e
  }
}

/** Remove a temporary after a failure; never throws (the failure is what the caller reports). */
export function discardTemporary(temp: string): void {
  try {
    fs.rmSync(temp, { recursive: true, force: true })
  } catch {
    // A hidden leftover at worst: the next export picks another name.
  }
}

/** Throw EINTR if `signal` was aborted: an export stops between blocks and keeps nothing. */
export function checkAborted(signal: AbortSignal | undefined, output: string): void {
  if (signal?.aborted) {
    const why = signal.reason instanceof Error ? signal.reason.message : typeof signal.reason === 'string' ? signal.reason : 'aborted'
    throw new PagecowError('EINTR', `export to ${output} interrupted (${why}); nothing was written at ${output}`)
  }
}

/**
 * Make the file `output` never half done: `write` fills a new temporary beside it (its
 * descriptor), then the temporary is synced and renamed into place (publishFile). On any failure,
 * or `signal` aborted by the end, the temporary goes and nothing is at `output`.
 */
export async function writeFileThenPublish<T>(output: string, overwrite: boolean, signal: AbortSignal | undefined, write: (fd: number) => Promise<T>): Promise<T> {
  const temp = temporaryBeside(output)
  let fd: number
  try {
    fd = fs.openSync(temp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o644)
  } catch (err) {
    throw fromSystemError(err, `creating ${output}`)
  }
  try {
    let result: T
    try {
      result = await write(fd)
      checkAborted(signal, output)
      fs.fsyncSync(fd)
    } finally {
      fs.closeSync(fd)
    }
    publishFile(temp, output, overwrite)
    return result
  } catch (err) {
    discardTemporary(temp)
    throw fromSystemError(err, `exporting to ${output}`)
  }
}
