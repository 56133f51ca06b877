// `pagecow export STORE OUTPUT`: the merged image written out as a plain raw file, sparse; or the
// merged tree of a tree store written out as a plain directory; `-` writes the image to standard
// output. Never half done: SIGINT or SIGTERM stops it and nothing is left at OUTPUT.
import { z } from 'zod'
import { isPagecowError, PagecowError } from '../../errors.js'
import { exportImage, exportImageToStream } from '../../image/export.js'
import { exportIncremental, exportIncrementalToStream, type IncrementalExportResult } from '../../incremental/export-incremental.js'
import type { ImageStore } from '../../image/image-store.js'
import { checkOutputPath } from '../../image/output-guard.js'
import { exportTree } from '../../tree/export.js'
import type { TreeStore } from '../../tree/tree-store.js'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand } from '../command.js'
import { formatSize } from '../format-size.js'
import { commonFlags, parseCommandLine } from '../options.js'
import { startProgress } from '../progress.js'
import { withAnyStore } from '../with-any-store.js'
import { escapeName } from '../escape-name.js'

const schema = z
  .strictObject({
    store: z.string().min(1),
    output: z.string().min(1),
    path: z.string().min(1).optional(),
    since: z.string().optional(),
    force: z.boolean().optional(),
    json: z.boolean().optional(),
    ...commonFlags,
  })
  .refine((o) => o.path === undefined || o.since !== undefined, { message: 'PATH is for an incremental of one file of a tree store: add --since NAME', path: ['path'] })

export function exportCommand(io: CliIo) {
  const cmd = newCommand('export', io)
    .summary('write the merged image to a raw file, or the merged tree to a directory')
    .description(
      'write the merged image to OUTPUT as a raw file (holes, zero pages and all-zero blocks stay sparse); for a tree store, write the merged tree into the new or empty directory OUTPUT, keeping modes, owners, times, xattrs, hard links and sparseness',
    )
    .argument('<STORE>', 'the store directory')
    .argument('<OUTPUT>', 'the raw image file, or the directory, to write; - writes the image (or the incremental) to standard output')
    .argument('[PATH]', 'with --since, tree stores: only the regular file whose changes to write (without it: the whole tree)')
    .option('--since <NAME>', 'write only what changed since the mark NAME, as an incremental file for `pagecow apply` (a tree store: every name, metadata and data change of the tree)')
    .option('--force', 'image stores: replace OUTPUT if it exists')
    .option('--json', 'print the result as JSON')
    .action(async (store: string, output: string, path: string | undefined) => {
      const opts = parseCommandLine(cmd, schema, path === undefined ? { store, output } : { store, output, path })
      const text = await whileInterruptible((signal) =>
        withAnyStore(opts.store, { readOnly: true }, async (s) =>
          opts.since !== undefined ? exportChanges(s, { ...opts, since: opts.since }, io, signal) : s.kind === 'image' ? exportOneImage(s, opts, io, signal) : exportOneTree(s, opts, io, signal),
        ),
      )
      if (text) await writeTo(io.stdout, text)
    })
  return examples(cmd, [
    'pagecow export vm1.cow vm1.img',
    'pagecow export vm1.cow vm1.img --force && qemu-img map --output=json vm1.img',
    'pagecow export vm1.cow - | gzip > vm1.img.gz',
    'pagecow export root.cow /srv/rootfs-merged',
    'pagecow export vm1.cow vm1-since-monday.pcinc --since monday',
    'pagecow export root.cow db-since-boot.pcinc --since boot /var/lib/db.img',
    'pagecow export root.cow root-since-boot.pcinc --since boot',
  ])
}

type ExportFlags = { output: string; force?: boolean | undefined; json?: boolean | undefined }

/** The output `-`: standard output. */
const STDOUT = '-'
const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const

/**
 * Run `work` with a signal that SIGINT or SIGTERM aborts (the export then stops, removes its
 * temporary and fails with EINTR), instead of the process dying with a temporary left behind.
 */
async function whileInterruptible<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController()
  const handlers = STOP_SIGNALS.map((name) => {
    const handler = () => controller.abort(name)
    process.on(name, handler)
    return [name, handler] as const
  })
  try {
    return await work(controller.signal)
  } finally {
    for (const [name, handler] of handlers) process.off(name, handler)
  }
}

async function exportOneImage(s: ImageStore, opts: ExportFlags, io: CliIo, signal: AbortSignal): Promise<string> {
  if (opts.output === STDOUT) {
    if (opts.force) throw new PagecowError('EINVAL', 'export: --force replaces a file; standard output (-) has none to replace')
    if (opts.json) throw new PagecowError('EINVAL', 'export: --json prints to standard output, which carries the image with -')
    if (io.stdoutIsTTY) throw new PagecowError('EINVAL', 'export: standard output is a terminal; redirect it (pagecow export STORE - > FILE, or into a pipe)')
    const progress = startProgress(io, 'export', s.size)
    try {
      await exportImageToStream(s, io.stdout, { signal, onProgress: (p) => progress.update(p.done) })
    } finally {
      progress.stop()
    }
    return '' // the image is the output
  }
  checkOutputPath(s, opts.output)
  const progress = startProgress(io, 'export', s.size)
  let result
  try {
    result = await exportImage(s, opts.output, { overwrite: opts.force === true, signal, onProgress: (p) => progress.update(p.done) })
  } catch (err) {
    if (isPagecowError(err, 'EEXIST')) throw new PagecowError('EEXIST', `${opts.output} exists; pass --force to replace it`, { cause: err })
    throw err
  } finally {
    progress.stop()
  }
  if (opts.json) return `${JSON.stringify(result, null, 2)}\n`
  return `exported ${formatSize(result.size)} to ${opts.output}: ${formatSize(result.bytesCopied)} of data copied, the rest left sparse\n`
}

type ChangesFlags = ExportFlags & { since: string; path?: string | undefined }

/** `--since`: an incremental of the image, of file PATH of a tree store, or of the whole tree. */
async function exportChanges(s: ImageStore | TreeStore, opts: ChangesFlags, io: CliIo, signal: AbortSignal): Promise<string> {
  const scope = opts.path === undefined ? {} : { path: opts.path }
  if (opts.output === STDOUT) {
    if (opts.force) throw new PagecowError('EINVAL', 'export: --force replaces a file; standard output (-) has none to replace')
    if (opts.json) throw new PagecowError('EINVAL', 'export: --json prints to standard output, which carries the incremental with -')
    if (io.stdoutIsTTY) throw new PagecowError('EINVAL', 'export: standard output is a terminal; redirect it (pagecow export STORE - --since NAME > FILE)')
    const progress = startProgress(io, 'export', changedBytes(s, opts, io))
    try {
      await exportIncrementalToStream(s, io.stdout, { since: opts.since, ...scope, signal, onProgress: (p) => progress.update(p.done) })
    } finally {
      progress.stop()
    }
    return ''
  }
  checkOutputPath(s, opts.output)
  const progress = startProgress(io, 'export', changedBytes(s, opts, io))
  let result: IncrementalExportResult
  try {
    result = await exportIncremental(s, opts.output, { since: opts.since, ...scope, overwrite: opts.force === true, signal, onProgress: (p) => progress.update(p.done) })
  } catch (err) {
    if (isPagecowError(err, 'EEXIST')) throw new PagecowError('EEXIST', `${opts.output} exists; pass --force to replace it`, { cause: err })
    throw err
  } finally {
    progress.stop()
  }
  if (opts.json) return `${JSON.stringify(result, null, 2)}\n`
  if (result.kind === 'tree') {
    const skipped = result.skipped.map((k) => `skipped ${escapeName(k.path)}: ${k.reason}\n`).join('')
    return (
      `${skipped}exported the changes of the tree since ${result.since.name} (up to the mark ${result.reached.name}) to ${opts.output}: ` +
      `${result.operations} operations, ${result.files} files, ${formatSize(result.dataBytes)} of data, ${formatSize(result.zeroBytes)} zeroed; ${formatSize(result.fileBytes)} written\n`
    )
  }
  const what = result.path === undefined ? 'the image' : escapeName(result.path)
  return (
    `exported the changes of ${what} since ${result.since.name} (up to the mark ${result.reached.name}) to ${opts.output}: ` +
    `${formatSize(result.dataBytes)} of data, ${formatSize(result.zeroBytes)} zeroed, size ${formatSize(result.size)}; ${formatSize(result.fileBytes)} written\n`
  )
}

/** The bytes an incremental covers, for the bar (counted only when a bar can be drawn; the list costs as the changes do). */
function changedBytes(s: ImageStore | TreeStore, opts: ChangesFlags, io: CliIo): number {
  if (!io.stderrIsTTY) return 0
  // A whole tree: the bar counts the bytes of the files it writes, known once they are listed; none drawn.
  const extents = s.kind === 'image' ? s.changedExtents(opts.since) : opts.path === undefined ? [] : s.changedExtents(opts.path, opts.since)
  let n = 0
  for (const e of extents) if (e.change !== 'truncated') n += e.length
  return n
}

async function exportOneTree(s: TreeStore, opts: ExportFlags, io: CliIo, signal: AbortSignal): Promise<string> {
  if (opts.output === STDOUT) throw new PagecowError('EINVAL', 'export: - (standard output) is for image stores; a tree store is exported into a new or empty directory')
  if (opts.force) throw new PagecowError('EINVAL', 'export: --force is for image stores; a tree is exported into a new or empty directory')
  // The bar counts objects; their number is only counted (readdir, no stat) when a bar can be drawn.
  const progress = startProgress(io, 'export', io.stderrIsTTY ? await countObjects(s, '/') : 0, (n) => `${n} objects`)
  let result
  try {
    result = await exportTree(s, opts.output, { signal, onProgress: (p) => progress.update(p.entries) })
  } finally {
    progress.stop()
  }
  if (opts.json) return `${JSON.stringify(result, null, 2)}\n`
  const skipped = result.skipped.map((k) => `skipped ${escapeName(k.path)}: ${k.reason}\n`).join('')
  return `${skipped}exported ${result.entries} objects to ${opts.output}: ${formatSize(result.bytesCopied)} of file data copied, holes left sparse\n`
}

/** The objects under directory `dir` of the merged tree (what exportTree writes, the root aside). */
async function countObjects(s: TreeStore, dir: string): Promise<number> {
  let n = 0
  let after: string | undefined
  for (;;) {
    const batch = await s.readdir(dir, after === undefined ? { limit: 1024 } : { after, limit: 1024 })
    if (batch.length === 0) return n
    after = batch[batch.length - 1]!.name
    for (const entry of batch) {
      n++
      if (entry.type === 'directory') n += await countObjects(s, dir === '/' ? `/${entry.name}` : `${dir}/${entry.name}`)
    }
  }
}
