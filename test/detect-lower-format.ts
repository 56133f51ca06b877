// detectLowerFormat(): what createStore makes of a lower it is given without `lowerFormat`.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import * as nodeFs from 'node:fs'
import { join } from 'node:path'
import { detectLowerFormat } from '../lib/index.js'

t.test('a directory, a squashfs image by its magic, anything else raw', async (t) => {
  const dir = t.testdir({ tree: { a: 'a' } })
  const squashfs = Buffer.alloc(4096)
  squashfs.write('hsqs', 0, 'latin1')
  nodeFs.writeFileSync(join(dir, 'image.sqfs'), squashfs)
  nodeFs.writeFileSync(join(dir, 'big-endian'), Buffer.from('sqsh'))
  nodeFs.writeFileSync(join(dir, 'short'), Buffer.from('hsq'))
  nodeFs.writeFileSync(join(dir, 'empty'), '')
  nodeFs.writeFileSync(join(dir, 'raw.img'), Buffer.alloc(8192))
  nodeFs.symlinkSync('image.sqfs', join(dir, 'link'))
  execFileSync('mkfifo', [join(dir, 'fifo')])
  const cases: Array<[string, string]> = [
    ['tree', 'directory'],
    ['image.sqfs', 'squashfs'],
    ['link', 'squashfs'],
    ['big-endian', 'raw'],
    ['short', 'raw'],
    ['empty', 'raw'],
    ['raw.img', 'raw'],
    ['fifo', 'raw'],
  ]
  for (const [name, format] of cases) t.equal(detectLowerFormat(join(dir, name)), format, `${name}: ${format}`)
  t.throws(() => detectLowerFormat(join(dir, 'none')), { code: 'ENOENT' }, 'nothing there: ENOENT')
  t.throws(() => detectLowerFormat(join(dir, 'raw.img', 'x')), { code: 'ENOTDIR' }, 'under a file: ENOTDIR')
})
