// `pagecow create STORE --lower LOWER`: a new store over a raw image, or over a directory tree or
// a squashfs image (read in user space).
import { statSync, type Stats } from 'node:fs'
import { z } from 'zod'
import { PagecowError } from '../../errors.js'
import { LOWER_FORMATS, type LowerFormat } from '../../lower-format.js'
import { createStore } from '../../open-store.js'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand, SIZE_FORMS } from '../command.js'
import { formatSize } from '../format-size.js'
import { parseLowerList } from '../lower-list.js'
import { nonRawFormat } from '../lower-format.js'
import { commonFlags, pageSizeValue, parseCommandLine } from '../options.js'
import { startProgress, type Progress } from '../progress.js'
import { pseudoFileSystemOf } from '../pseudo-fs.js'

const TREE_WHAT = { directory: 'tree', squashfs: 'tree (squashfs image)', store: 'tree (a tree store)', stack: 'tree (stacked lowers)' } as const

const schema = z.strictObject({
  store: z.string().min(1, 'the store directory is required'),
  lower: z.string().min(1, 'the lower (an image or a directory) is required'),
  lowerFormat: z.enum(LOWER_FORMATS, { error: `must be one of ${LOWER_FORMATS.join(', ')}` }).optional(),
  pageSize: pageSizeValue.optional(),
  bindLower: z.boolean().optional(),
  json: z.boolean().optional(),
  ...commonFlags,
})

export function createCommand(io: CliIo) {
  const cmd = newCommand('create', io)
    .summary('create a store over a raw image, a directory tree or a squashfs image')
    .description(
      'create a store in STORE (a new or empty directory) overlaying LOWER: a raw image (image mode), or a directory or a squashfs image read without mounting it (tree mode), or another image store (a chain: its merged image is the lower, and it is sealed, never written again). A lower in another disk image format (qcow2, qed, vmdk, vhdx, vdi, vhd) is refused: convert it to raw first',
    )
    .argument('<STORE>', 'the store directory to create')
    .requiredOption('--lower <LOWER>', "the raw image, directory, squashfs image, image store (a chain) or tree store to overlay; it is only ever read (a store given is sealed: never written again). Tree mode takes several, leftmost on top, as overlayfs's lowerdir: A:B:C (a ':' in a path is written '\\:')")
    .option('--lower-format <FORMAT>', `what LOWER is: ${LOWER_FORMATS.join(', ')}; default: a store (a directory holding one), a directory, a squashfs image by its magic, else raw ("raw" also takes LOWER as raw even if it starts like a qcow2, vmdk, vhdx, vdi or vhd image)`)
    .option('--page-size <SIZE>', `page size, a power of two from 512 to 1M (${SIZE_FORMS}); default 4k (over an image store: the store's, the only one allowed)`)
    .option('--bind-lower', 'bind the store to its lower: hash every lower page now (reads the whole lower once), so reads never serve a lower page that changed')
    .option('--json', "print the new store's info as JSON")
    .action(async (store: string) => {
      const opts = parseCommandLine(cmd, schema, { store })
      checkStorePlace(opts.store)
      const lowers = parseLowerList(opts.lower)
      for (const lower of lowers) checkLower(lower, opts.lowerFormat)
      let progress: Progress | undefined
      let created
      try {
        created = await createStore(opts.store, {
          lower: lowers.length === 1 ? lowers[0]! : lowers,
          lowerFormat: opts.lowerFormat,
          pageSize: opts.pageSize,
          bindLower: opts.bindLower ?? false,
          onProgress: ({ doneBytes, totalBytes }) => {
            progress ??= startProgress(io, 'bind', totalBytes)
            progress.update(doneBytes)
          },
        })
      } finally {
        progress?.stop()
      }
      try {
        const info = created.info()
        const what = info.kind === 'image' ? `${formatSize(info.size)} image` : TREE_WHAT[info.lower.format]
        const over = info.kind === 'image' && info.lower.format === 'store' ? `the store ${info.lower.path} (sealed: it is read-only from now on)` : info.lower.path
        await writeTo(io.stdout, opts.json ? `${JSON.stringify(info, null, 2)}\n` : `created ${info.path}: ${what} over ${over}, page size ${formatSize(info.pageSize)}\n`)
      } finally {
        await created.close()
      }
    })
  return examples(cmd, [
    'pagecow create vm1.cow --lower base.img',
    'pagecow create vm1.cow --lower base.img --page-size 64k --json',
    'pagecow create root.cow --lower /srv/rootfs',
    'pagecow create vm1.cow --lower base.img --bind-lower',
    'pagecow create root.cow --lower rootfs.squashfs',
    'pagecow create app.cow --lower /srv/app:/srv/runtime:rootfs.squashfs',
    'pagecow create vm-root.cow --lower root.cow',
    'pagecow create golden.cow --lower base.img && pagecow create vm1.cow --lower golden.cow',
    'qemu-img convert -O raw base.qcow2 base.img && pagecow create vm1.cow --lower base.img',
  ])
}

/** STORE must be able to become a store directory: not a file, not on a pseudo file system. */
function checkStorePlace(store: string): void {
  const pseudo = pseudoFileSystemOf(store)
  if (pseudo) throw new PagecowError('EINVAL', `create: ${store} is on ${pseudo}, a kernel pseudo file system; make the store on a real file system`)
  const stat = statIfAny(store)
  if (stat && stat !== 'unreadable' && !stat.isDirectory()) throw new PagecowError('EEXIST', `create: ${store} exists and is not a directory; a store is made in a new or empty directory`)
}

/**
 * An image lower must look raw, unless --lower-format says what it is (createStore then checks
 * that it is: a squashfs image by its magic, a directory).
 */
function checkLower(lower: string, format: LowerFormat | undefined): void {
  const stat = statIfAny(lower)
  if (!stat) throw new PagecowError('ENOENT', `create: the lower ${lower} does not exist`)
  if (stat === 'unreadable') return // creating the store says why
  if (stat.isDirectory()) {
    if (format === 'raw') throw new PagecowError('EINVAL', `create: --lower-format raw is for an image lower; ${lower} is a directory (a tree lower)`)
    return
  }
  if (format !== undefined || !stat.isFile()) return
  let found: string | undefined
  try {
    found = nonRawFormat(lower)
  } catch {
    return // unreadable: creating the store says why
  }
  if (found) {
    throw new PagecowError(
      'EINVAL',
      `create: the lower ${lower} is a ${found} image, not a raw one, and pagecow overlays raw images: convert it (qemu-img convert -O raw ${lower} LOWER.img), or pass --lower-format raw if it really is raw`,
    )
  }
}

/** The stat of `path`; undefined if nothing is there, 'unreadable' if that cannot be told. */
function statIfAny(path: string): Stats | undefined | 'unreadable' {
  try {
    return statSync(path)
  } catch (err) {
    const code = (err as { code?: unknown }).code
    return code === 'ENOENT' || code === 'ENOTDIR' ? undefined : 'unreadable'
  }
}
