// `pagecow export STORE OUT --since MARK`: only what changed since a mark, as an incremental file
// (see incremental-format.ts) that `applyIncremental` lays onto an image exported at the mark
// (a whole tree: export-tree-incremental.ts).
// Costs in proportion to the changes: the changed extents are listed from the change record and
// only their bytes are read.
import type { Writable } from 'node:stream'
import { z } from 'zod'
import * as fs from '../fs.js'
import { fromSystemError, parseWith, PagecowError } from '../errors.js'
import { markNameSchema } from '../changes/mark-name.js'
import type { ImageStore } from '../image/image-store.js'
import { checkOutputPath } from '../image/output-guard.js'
import { checkAborted, writeFileThenPublish } from '../image/temp-output.js'
import type { TreeStore } from '../tree/tree-store.js'
import { byteRuns, choosePages, hashRuns } from './expected-content.js'
import type { IncrementalHeader, IncrementalMark } from './incremental-format.js'
import { imageSource, treeFileSource, type IncrementalSource } from './incremental-source.js'
import { IncrementalWriter, type IncrementalSink, type IncrementalTotals } from './incremental-writer.js'
import { changedBytesOf, writeChanges } from './write-changes.js'
import { writeTreeIncremental, type TreeIncrementalExportResult } from './export-tree-incremental.js'

export interface IncrementalProgress {
  /** Changed bytes done so far. */
  done: number
  /** Changed bytes in all (written, zeroed and lower again; truncated pieces cost nothing). */
  total: number
}

const streamOptionsSchema = z.strictObject({
  /** The mark to count from (required). */
  since: markNameSchema,
  /** Tree stores: the regular file to export the changes of; without it, the whole tree. */
  path: z.string().min(1).optional(),
  /** Called as the export advances. */
  onProgress: z.custom<(progress: IncrementalProgress) => void>((v) => typeof v === 'function').optional(),
  /** Stop the export (EINTR, nothing kept at the output) when this is aborted. */
  signal: z.custom<AbortSignal>((v) => v instanceof AbortSignal, 'signal must be an AbortSignal').optional(),
})

const fileOptionsSchema = streamOptionsSchema.extend({
  /** Replace an existing output file. Default false. */
  overwrite: z.boolean().default(false),
})

export type IncrementalExportOptions = z.input<typeof fileOptionsSchema>
export type IncrementalStreamOptions = z.input<typeof streamOptionsSchema>

/** What an image's (or one file's) incremental export did. */
export interface ImageIncrementalExportResult extends IncrementalTotals {
  kind: 'image' | 'file'
  path?: string
  since: IncrementalMark
  reached: IncrementalMark
  /** The size of the image (file) now: apply sets its target to it. */
  size: number
}

/** What an incremental export did (plain data; `pagecow export --since --json` prints it). */
export type IncrementalExportResult = ImageIncrementalExportResult | TreeIncrementalExportResult

/**
 * Write what changed in `store` (the image, file `path` of a tree store, or without `path` the
 * whole tree) since the mark `since` to the file `output`. Never half done: written under a temporary name beside `output`,
 * synced, then renamed into place; on failure or abort nothing is at `output`.
 */
export async function exportIncremental(store: ImageStore | TreeStore, output: string, options: IncrementalExportOptions): Promise<IncrementalExportResult> {
  const opts = parseWith(fileOptionsSchema, options, 'export')
  checkOutputPath(store, output)
  const existing = statOrUndefined(output)
  if (existing && !opts.overwrite) throw new PagecowError('EEXIST', `${output} exists; choose another name or overwrite it`)
  if (existing && !existing.isFile()) throw new PagecowError('EINVAL', `${output} is not a regular file; stream into it with - instead`)
  const toFile = (fd: number): IncrementalSink => {
    let position = 0
    return async (bytes) => {
      for (let done = 0; done < bytes.length; ) done += fs.writeSync(fd, bytes, done, bytes.length - done, position + done)
      position += bytes.length
    }
  }
  if (store.kind === 'tree' && opts.path === undefined) {
    checkAborted(opts.signal, output)
    return writeFileThenPublish(output, opts.overwrite, opts.signal, (fd) => writeTreeIncremental(store, opts, output, toFile(fd)))
  }
  const source = await sourceOf(store, opts.since, opts.path)
  try {
    checkAborted(opts.signal, output)
    return await writeFileThenPublish(output, opts.overwrite, opts.signal, (fd) => writeIncremental(source, opts, output, toFile(fd)))
  } finally {
    await source.close()
  }
}

/** The same, to a stream (standard output), waiting for it to take each block. */
export async function exportIncrementalToStream(store: ImageStore | TreeStore, stream: Writable, options: IncrementalStreamOptions): Promise<IncrementalExportResult> {
  const opts = parseWith(streamOptionsSchema, options, 'export')
  const sink: IncrementalSink = (bytes) =>
    new Promise<void>((resolve, reject) => stream.write(bytes, (err) => (err ? reject(fromSystemError(err, 'writing the incremental to standard output')) : resolve())))
  if (store.kind === 'tree' && opts.path === undefined) return writeTreeIncremental(store, opts, 'standard output', sink)
  const source = await sourceOf(store, opts.since, opts.path)
  try {
    return await writeIncremental(source, opts, 'standard output', sink)
  } finally {
    await source.close()
  }
}

async function sourceOf(store: ImageStore | TreeStore, since: string, path: string | undefined): Promise<IncrementalSource> {
  if (store.kind === 'image') {
    if (path !== undefined) throw new PagecowError('EINVAL', 'export: PATH names a file of a tree store; an image store exports its image')
    return imageSource(store)
  }
  return treeFileSource(store, path!, since)
}

type Opts = { since: string; onProgress?: ((p: IncrementalProgress) => void) | undefined; signal?: AbortSignal | undefined }

async function writeIncremental(source: IncrementalSource, opts: Opts, where: string, sink: IncrementalSink): Promise<ImageIncrementalExportResult> {
  // The newest mark first, then the size and the changes: a change made in between is listed
  // (or is after that mark and so is listed by the next incremental), never lost between two.
  const marks = source.marks()
  const since = marks.find((m) => m.name === opts.since)
  if (!since) throw new PagecowError('ENOENT', `no mark named ${JSON.stringify(opts.since)} (\`pagecow marks\` lists them)`)
  const reached = marks.at(-1)!
  const createdAt = new Date().toISOString()
  const size = await source.size()
  const changed = [...source.changed(opts.since)]
  const pages = choosePages(source, opts.since, changed, size)
  const runs = byteRuns(pages, source.pageSize, size)
  const header: IncrementalHeader = {
    format: 'pagecow-incremental',
    kind: source.kind,
    store: source.store,
    ...(source.path === undefined ? {} : { path: source.path }),
    pageSize: source.pageSize,
    size,
    since: markOf(since),
    reached: markOf(reached),
    createdAt,
    expect: { runs, sha256: await hashRuns(runs, (b, o) => source.readInto(b, o)) },
  }
  const writer = await IncrementalWriter.start(sink, header)
  const total = changedBytesOf(changed, size)
  let done = 0
  await writeChanges(writer, changed, size, (b, o) => source.readInto(b, o), (n) => opts.onProgress?.({ done: (done += n), total }), opts.signal, where)
  const totals = await writer.end()
  return { kind: source.kind, ...(source.path === undefined ? {} : { path: source.path }), since: header.since, reached: header.reached, size, ...totals }
}

function markOf(m: { name: string; epoch: number; created: string }): IncrementalMark {
  return { name: m.name, epoch: m.epoch, created: m.created }
}

function statOrUndefined(path: string) {
  try {
    return fs.statSync(path)
  } catch {
    return undefined
  }
}
