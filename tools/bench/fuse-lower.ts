// The lower directory of the FUSE benchmark (issue 4), built once under os.tmpdir() and reused by
// later runs, with a plain copy of it for the baseline: big files to write into once, a file of
// real data to read, a file for random writes, a nested tree of small files to walk, and a tarball
// of a source-like tree to unpack.
import { execFileSync } from 'node:child_process'
import { randomFillSync } from 'node:crypto'
import * as fs from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { rng } from './random.js'

const KiB = 1024
const MiB = 1024 * KiB
/** Bump when the layout changes, so an old fixture is not reused. */
const LAYOUT = 1
/** The big first-write files hold real data in this many regions, spread evenly… */
const DATA_REGIONS = 64
/** …each a quarter of its slice: 256 MiB of real bytes in a 1 GiB file, the rest holes. */
const DATA_FRACTION = 4
const SMALL_FILE_BYTES = 100
const FILL_BLOCK = 4 * MiB

export interface FuseSizes {
  /** Size of each first-write file and of the sequential-read file. */
  bigBytes: number
  /** First-write files (one per repetition, plus one to warm up). */
  firstWriteFiles: number
  /** The random-write file. */
  rwBytes: number
  /** The walked tree: top × mid directories of `leaf` files each. */
  top: number
  mid: number
  leaf: number
  /** The tarball: `tarDirs` directories of `tarFilesPerDir` files. */
  tarDirs: number
  tarFilesPerDir: number
}

export interface FuseFixture {
  sizes: FuseSizes
  /** The lower directory, and a plain copy of it (the baseline writes into the copy). */
  lower: string
  copy: string
  /** The tarball (outside both trees). */
  tarball: string
  tarFiles: number
  tarBytes: number
  /** Relative paths inside the lower/copy. */
  firstWrite: string[]
  warmup: string
  seqRead: string
  randomWrite: string
  tree: string
  /** Files in the walked tree, and directories (with its root). */
  treeFiles: number
  treeDirs: number
}

/** Where the 1-byte first write lands: the middle of the file, inside a region of real data. */
export function firstWriteOffset(size: number): number {
  return size / 2 + 12345
}

/** The fixture for `sizes`, made now if an earlier run did not. */
export function fuseFixture(sizes: FuseSizes, log: (line: string) => void): FuseFixture {
  const tag = `${sizes.bigBytes / MiB}M-${sizes.firstWriteFiles}-${sizes.top * sizes.mid * sizes.leaf}f-${sizes.tarDirs * sizes.tarFilesPerDir}t`
  const root = join(tmpdir(), `pagecow-bench-fuse-fixture-v${LAYOUT}`, tag)
  const firstWrite = Array.from({ length: sizes.firstWriteFiles }, (_, i) => `first/f${i}.img`)
  const fixture: FuseFixture = {
    sizes,
    lower: join(root, 'lower'),
    copy: join(root, 'copy'),
    tarball: join(root, 'src.tar'),
    tarFiles: sizes.tarDirs * sizes.tarFilesPerDir,
    tarBytes: 0,
    firstWrite,
    warmup: 'first/warmup.img',
    seqRead: 'seq.img',
    randomWrite: 'rw.img',
    tree: 'tree',
    treeFiles: sizes.top * sizes.mid * sizes.leaf,
    treeDirs: 1 + sizes.top + sizes.top * sizes.mid,
  }
  const done = join(root, 'complete')
  if (fs.existsSync(done)) {
    fixture.tarBytes = fs.statSync(fixture.tarball).size
    log(`reusing the FUSE fixture ${root}`)
    return fixture
  }
  const start = Date.now()
  fs.rmSync(root, { recursive: true, force: true })
  for (const dir of [fixture.lower, fixture.copy]) {
    fs.mkdirSync(join(dir, 'first'), { recursive: true })
    for (const f of [...firstWrite, fixture.warmup]) makeRegionFile(join(dir, f), sizes.bigBytes)
    makeDataFile(join(dir, fixture.seqRead), sizes.bigBytes)
    makeDataFile(join(dir, fixture.randomWrite), sizes.rwBytes)
    makeTree(join(dir, fixture.tree), sizes)
    log(`made ${dir} in ${((Date.now() - start) / 1000).toFixed(1)} s`)
  }
  makeTarball(fixture.tarball, join(root, 'src'), sizes)
  fixture.tarBytes = fs.statSync(fixture.tarball).size
  execFileSync('sync')
  fs.writeFileSync(done, `${new Date().toISOString()}\n`)
  log(`made the FUSE fixture ${root} in ${((Date.now() - start) / 1000).toFixed(1)} s`)
  return fixture
}

/** A sparse file of `size` bytes with real data in DATA_REGIONS evenly spread regions. */
function makeRegionFile(path: string, size: number): void {
  const slice = size / DATA_REGIONS
  const region = slice / DATA_FRACTION
  const block = Buffer.alloc(Math.min(FILL_BLOCK, region))
  const fd = fs.openSync(path, 'w')
  try {
    fs.ftruncateSync(fd, size)
    for (let r = 0; r < DATA_REGIONS; r++) {
      for (let at = 0; at < region; at += block.length) {
        randomFillSync(block)
        fs.writeSync(fd, block, 0, block.length, r * slice + at)
      }
    }
  } finally {
    fs.closeSync(fd)
  }
}

/** `size` bytes of random data, no holes. */
function makeDataFile(path: string, size: number): void {
  const block = Buffer.alloc(FILL_BLOCK)
  const fd = fs.openSync(path, 'w')
  try {
    for (let pos = 0; pos < size; pos += block.length) {
      randomFillSync(block)
      fs.writeSync(fd, block, 0, Math.min(block.length, size - pos), pos)
    }
  } finally {
    fs.closeSync(fd)
  }
}

/** top/dNN/sNN/fNNN: small files two directory levels down. */
function makeTree(root: string, z: FuseSizes): void {
  const small = Buffer.alloc(SMALL_FILE_BYTES, 0x61)
  let n = 0
  for (let t = 0; t < z.top; t++) {
    for (let m = 0; m < z.mid; m++) {
      const dir = join(root, `d${String(t).padStart(3, '0')}`, `s${String(m).padStart(2, '0')}`)
      fs.mkdirSync(dir, { recursive: true })
      for (let f = 0; f < z.leaf; f++) {
        small.writeUInt32LE(n++, 0)
        fs.writeFileSync(join(dir, `f${String(f).padStart(4, '0')}`), small)
      }
    }
  }
}

/**
 * A tarball shaped like a source tree: `tarDirs` directories (two levels) of `tarFilesPerDir`
 * text-like files of 200 B to 8 KiB (skewed small), made in `staging` and packed with tar.
 */
function makeTarball(tarball: string, staging: string, z: FuseSizes): void {
  const next = rng(4)
  const pool = randomFillSync(Buffer.alloc(64 * KiB)).map((b) => 0x20 + (b % 95))
  fs.rmSync(staging, { recursive: true, force: true })
  for (let d = 0; d < z.tarDirs; d++) {
    const dir = join(staging, `pkg${String(d % 10).padStart(2, '0')}`, `mod${String(d).padStart(3, '0')}`)
    fs.mkdirSync(dir, { recursive: true })
    for (let f = 0; f < z.tarFilesPerDir; f++) {
      const size = Math.floor(200 + next() * next() * 8 * KiB)
      const at = Math.floor(next() * (pool.length - size))
      fs.writeFileSync(join(dir, `file${f}.c`), pool.subarray(at, at + size))
    }
  }
  execFileSync('tar', ['-cf', tarball, '-C', staging, '.'])
  fs.rmSync(staging, { recursive: true, force: true })
}
