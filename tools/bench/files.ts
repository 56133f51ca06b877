// Fixture files: a lower full of real (random) bytes, sparse files of any size.
import { randomFillSync } from 'node:crypto'
import * as fs from 'node:fs'

const FILL_BLOCK = 16 * 1024 * 1024
const STAMP_EVERY = 4096

/**
 * Write `size` bytes of real data to `path` (no holes): one block of random bytes, with every
 * 4 KiB stamped with its offset so that no two pages are alike. Then read it once to warm it.
 */
export function makeDataFile(path: string, size: number): void {
  const block = randomFillSync(Buffer.alloc(FILL_BLOCK))
  const fd = fs.openSync(path, 'w')
  try {
    for (let pos = 0; pos < size; pos += FILL_BLOCK) {
      const n = Math.min(FILL_BLOCK, size - pos)
      for (let at = 0; at < n; at += STAMP_EVERY) block.writeDoubleLE(pos + at, at)
      let done = 0
      while (done < n) done += fs.writeSync(fd, block, done, n - done, pos + done)
    }
  } finally {
    fs.closeSync(fd)
  }
  warm(path)
}

/** A file of apparent size `size` holding no blocks at all. */
export function makeSparseFile(path: string, size: number): void {
  const fd = fs.openSync(path, 'w')
  try {
    fs.ftruncateSync(fd, size)
  } finally {
    fs.closeSync(fd)
  }
}

/** Read a file through once so that it sits in the page cache. */
export function warm(path: string): void {
  const block = Buffer.allocUnsafe(FILL_BLOCK)
  const fd = fs.openSync(path, 'r')
  try {
    while (fs.readSync(fd, block, 0, FILL_BLOCK, null) > 0) {
      // reading is the point
    }
  } finally {
    fs.closeSync(fd)
  }
}

/** Blocks a file holds, in bytes (to show a fixture is data, not a hole). */
export function allocatedBytes(path: string): number {
  return fs.statSync(path).blocks * 512
}
