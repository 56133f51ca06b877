// `pagecow demo [DIR]`: a sample lower, a store over it, a few writes, and the inspect drawing.
import { existsSync, statSync } from 'node:fs'
import { mkdir, mkdtemp, open, readdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { z } from 'zod'
import { PagecowError } from '../../errors.js'
import { ImageStore } from '../../image/image-store.js'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand } from '../command.js'
import { formatSize } from '../format-size.js'
import { inspectStore } from '../../inspect-report.js'
import { formatInspect } from '../inspect-report.js'
import { commonFlags, parseCommandLine } from '../options.js'
import { pseudoFileSystemOf } from '../pseudo-fs.js'
import { cliFileError } from '../system-error.js'
import { withStore } from '../with-store.js'

const MiB = 1024 * 1024
/** The sample lower: sparse, with a few data regions, so it costs a few MiB of disk at most. */
const LOWER_SIZE = 256 * MiB
const LOWER_REGIONS: ReadonlyArray<[start: number, length: number]> = [
  [0, MiB / 4],
  [16 * MiB, MiB],
  [64 * MiB, MiB / 2],
  [192 * MiB, MiB],
  [240 * MiB, MiB / 4],
]

const schema = z.strictObject({ dir: z.string().min(1).optional(), ...commonFlags })

export function demoCommand(io: CliIo) {
  const cmd = newCommand('demo', io)
    .summary('a sample image, store and page map to look at')
    .description('make a sample sparse lower image and a store over it, write a few pages, zero a range, and show inspect')
    .argument('[DIR]', 'where to put lower.img and store/ (a new or empty directory); default a new directory under the system temp dir')
    .action(async (dir: string | undefined) => {
      const opts = parseCommandLine(cmd, schema, dir === undefined ? {} : { dir })
      const out = (line: string) => writeTo(io.stdout, `${line}\n`)
      const where = await prepareDirectory(opts.dir)
      const lowerPath = join(where, 'lower.img')
      const storePath = join(where, 'store')
      await out(`pagecow demo in ${where}`)
      const dataBytes = await makeLower(lowerPath)
      await out(`  lower  ${lowerPath}: ${formatSize(LOWER_SIZE)} sparse raw image, ${formatSize(dataBytes)} of data in ${LOWER_REGIONS.length} regions`)
      const store = await ImageStore.create(storePath, { lower: lowerPath })
      try {
        await out(`  store  ${storePath}, page size ${formatSize(store.pageSize)}`)
        const steps: Array<[string, () => Promise<void>]> = [
          ['write  4.0 KiB at 0 (a whole page over lower data: written without reading the lower)', () => store.write(0, pattern(4096, 'boot'))],
          ['write  100 B at 16.0 MiB + 1000 (part of a page: that one page is copied up)', () => store.write(16 * MiB + 1000, pattern(100, 'patch'))],
          ['write  64.0 KiB at 96.0 MiB (into a hole of the lower)', () => store.write(96 * MiB, pattern(64 * 1024, 'new'))],
          ['write  4.0 KiB at 250.0 MiB', () => store.write(250 * MiB, pattern(4096, 'tail'))],
          ['zero   8.0 MiB at 190.0 MiB (over lower data: ZERO pages, nothing stored)', () => store.zero(190 * MiB, 8 * MiB)],
        ]
        for (const [text, step] of steps) {
          await step()
          await out(`  ${text}`)
        }
      } finally {
        await store.close()
      }
      const report = await withStore(storePath, { readOnly: true }, async (s) => inspectStore(s))
      await out('')
      await writeTo(io.stdout, formatInspect(report))
      const s = shellQuote(storePath)
      await out(['', 'Try:', `  pagecow map ${s}`, `  pagecow map ${s} --output=json`, `  pagecow fsck ${s}`, `  pagecow export ${s} ${shellQuote(join(where, 'merged.img'))}`].join('\n'))
    })
  return examples(cmd, ['pagecow demo', 'pagecow demo /tmp/pagecow-demo'])
}

/** DIR (created if needed, must be empty) or a fresh directory under the system temp dir. */
async function prepareDirectory(dir: string | undefined): Promise<string> {
  try {
    if (dir === undefined) return await mkdtemp(join(tmpdir(), 'pagecow-demo-'))
    const path = resolve(dir)
    const pseudo = pseudoFileSystemOf(path)
    if (pseudo) throw new PagecowError('EINVAL', `${path} is on ${pseudo}, a kernel pseudo file system; give the demo a directory on a real one`)
    if (existsSync(path) && !statSync(path).isDirectory()) throw new PagecowError('EEXIST', `${path} exists and is not a directory; the demo needs a new or empty directory`)
    await mkdir(path, { recursive: true })
    if ((await readdir(path)).length > 0) throw new PagecowError('EEXIST', `${path} is not empty; the demo needs a new or empty directory`)
    return path
  } catch (err) {
    throw cliFileError(err, 'preparing the demo directory')
  }
}

/** Write the sparse sample lower; returns the bytes of data in it. */
async function makeLower(path: string): Promise<number> {
  let data = 0
  try {
    const file = await open(path, 'wx')
    try {
      await file.truncate(LOWER_SIZE)
      for (const [i, [start, length]] of LOWER_REGIONS.entries()) {
        await file.write(pattern(length, `lower region ${i}`), 0, length, start)
        data += length
      }
    } finally {
      await file.close()
    }
  } catch (err) {
    throw cliFileError(err, `writing the sample lower ${path}`)
  }
  return data
}

/** `length` bytes of a recognizable text, for `pagecow read` to show. */
function pattern(length: number, label: string): Buffer {
  const buf = Buffer.alloc(length)
  buf.fill(`pagecow demo: ${label}\n`)
  return buf
}

function shellQuote(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`
}
