// Our own addon (native/pagecow.c, built by node-gyp at install): what Node cannot do exactly, and
// the page checksums. Loaded at its first use.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

/** A watch made by watchReadable (opaque). */
export interface ReadableWatch {
  readonly __watch: unique symbol
}

/** Who connected a Unix socket, as the kernel recorded it at connect(2) (SO_PEERCRED). */
export interface PeerCredentials {
  pid: number
  uid: number
  gid: number
}

export interface Addon {
  utimensat(path: Buffer, atimeSec: number, atimeNsec: number, mtimeSec: number, mtimeNsec: number): void
  mknod(path: Buffer, mode: number, rdev: number): void
  watchReadable(fd: number, callback: (status: number) => void): ReadableWatch
  watchPause(watch: ReadableWatch): void
  watchResume(watch: ReadableWatch): void
  watchClose(watch: ReadableWatch): void
  spliceReply(fuseFd: number, header: Buffer, fd: number, position: number, bytes: number, zeros: number): number
  spliceCapacity(): number
  /** Who connected the Unix socket `fd` (SO_PEERCRED). */
  peerCredentials(fd: number): PeerCredentials
  /** XXH64 (seed 0) of all of `bytes`. */
  xxh64(bytes: Uint8Array): bigint
  /** XXH64 of all of `bytes`, 1 for a digest of 0. */
  pageSum(bytes: Uint8Array): bigint
  /** out[i] = pageSum of page i of `bytes` (a short last page as it is); returns the pages summed. */
  pageSums(bytes: Uint8Array, pageSize: number, out: BigUint64Array): number
  /** The first whole page i >= from whose expected[i] is not 0 and not its pageSum, or -1. */
  verifyPages(bytes: Uint8Array, pageSize: number, expected: BigUint64Array, from: number): number
  /**
   * pread page-sized pieces of fd: piece i from byte positions[i] into bytes at i × pageSize
   * (neighbours in one pread); past the end of the file zeros. Returns 0, or a negative errno and
   * in failed the index of the piece that failed.
   */
  preadPages(fd: number, bytes: Uint8Array, pageSize: number, positions: Float64Array, count: number, failed: Int32Array): number
  /** An ArrayBuffer over bytes [0, length) of fd, shared with the file (MAP_SHARED). */
  mapShared(fd: number, length: number): ArrayBuffer
  /** Detach a mapShared buffer (unmapped once V8 frees it). */
  unmapShared(buffer: ArrayBuffer): void
  /** Which loop hashes: "avx512" or "scalar"; `scalarOnly` first forces the scalar one or not (tests). */
  hashPath(scalarOnly?: boolean): string
}

let loaded: Addon | undefined

export function addon(): Addon {
  return (loaded ??= require('../build/Release/pagecow.node') as Addon)
}
