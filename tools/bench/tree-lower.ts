// The lower trees of the tree-mode benchmark, built once under os.tmpdir() and reused by later
// runs: DIRS directories of FILES small files, plus big.img (a 1 GiB sparse file with real data
// around the write offset), and a plain copy of each tree for the `fs` baseline.
import { randomFillSync } from 'node:crypto'
import * as fs from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const GiB = 2 ** 30
/** The 1 GiB file every tree holds at its root, and where the 1-byte write lands. */
export const BIG_FILE = 'big.img'
export const BIG_BYTES = GiB
export const WRITE_OFFSET = GiB / 2 + 12345
/** Real (random) bytes written around WRITE_OFFSET; the rest of big.img is a hole. */
const DATA_AROUND = 1024 * 1024
const SMALL_FILE_BYTES = 100
/** Bump when the layout changes, so an old fixture is not reused. */
const LAYOUT = 1

export interface TreeFixture {
  /** The lower directory, and a plain copy of it for the baseline. */
  lower: string
  copy: string
  dirs: number
  filesPerDir: number
  /** Files in the tree (small files plus big.img) and directories (without the root). */
  files: number
  directories: number
}

/** The fixture with `dirs` × `filesPerDir` small files, made now if an earlier run did not. */
export function treeFixture(dirs: number, filesPerDir: number, log: (line: string) => void): TreeFixture {
  const root = join(tmpdir(), `pagecow-bench-tree-fixture-v${LAYOUT}`, `${dirs}x${filesPerDir}`)
  const fixture: TreeFixture = {
    lower: join(root, 'lower'),
    copy: join(root, 'copy'),
    dirs,
    filesPerDir,
    files: dirs * filesPerDir + 1,
    directories: dirs,
  }
  const done = join(root, 'complete')
  if (fs.existsSync(done)) {
    log(`reusing the lower tree ${fixture.lower} (${fixture.files} files)`)
    return fixture
  }
  const start = Date.now()
  fs.rmSync(root, { recursive: true, force: true })
  for (const dir of [fixture.lower, fixture.copy]) makeTree(dir, dirs, filesPerDir)
  fs.writeFileSync(done, `${new Date().toISOString()}\n`)
  log(`made the lower tree ${fixture.lower} and its copy (${fixture.files} files each) in ${((Date.now() - start) / 1000).toFixed(1)} s`)
  return fixture
}

function makeTree(top: string, dirs: number, filesPerDir: number): void {
  fs.mkdirSync(top, { recursive: true })
  const small = Buffer.alloc(SMALL_FILE_BYTES, 0x61)
  for (let d = 0; d < dirs; d++) {
    const dir = join(top, `d${String(d).padStart(4, '0')}`)
    fs.mkdirSync(dir)
    for (let f = 0; f < filesPerDir; f++) {
      small.writeUInt32LE(d * filesPerDir + f, 0)
      fs.writeFileSync(join(dir, `f${String(f).padStart(5, '0')}`), small)
    }
  }
  const fd = fs.openSync(join(top, BIG_FILE), 'w')
  try {
    fs.ftruncateSync(fd, BIG_BYTES)
    const data = randomFillSync(Buffer.alloc(DATA_AROUND))
    fs.writeSync(fd, data, 0, data.length, WRITE_OFFSET - DATA_AROUND / 2)
  } finally {
    fs.closeSync(fd)
  }
}
