// One layer of a store's backing chain as plain data: what `pagecow info` prints (like
// `qemu-img info --backing-chain`) and `--json` gives as is.
import * as fs from '../fs.js'
import { fromSystemError } from '../errors.js'

/** One layer of a chain, the store itself first (depth 0), the raw image at the bottom last. */
export interface ChainLayer {
  /** 0: the store asked about; each layer below one more (what `map` reports as `depth`). */
  depth: number
  /** The store directory, or the raw image file. */
  path: string
  /** 'pagecow': an image store; 'raw': the raw image at the bottom. */
  format: 'pagecow' | 'raw'
  /** Size of the layer's image in bytes. */
  size: number
  /** Bytes the layer takes on disk (a store's upper data file; the raw image's blocks). */
  allocatedBytes: number
  /** A store's page size; null for the raw image. */
  pageSize: number | null
  /** A store's DATA and ZERO pages; null for the raw image. */
  pages: { data: number; zero: number } | null
  /** Whether the store is sealed (another store was created on it: never written again). */
  sealed: boolean
  /** The layer below: its path, or null at the bottom. */
  backing: string | null
  backingFormat: 'pagecow' | 'raw' | null
}

/** The raw image at the bottom of a chain. */
export function rawLayer(path: string, depth: number): ChainLayer {
  let st
  try {
    st = fs.statSync(path)
  } catch (err) {
    throw fromSystemError(err, `reading the lower ${path}`)
  }
  return { depth, path, format: 'raw', size: st.size, allocatedBytes: st.blocks * 512, pageSize: null, pages: null, sealed: false, backing: null, backingFormat: null }
}
