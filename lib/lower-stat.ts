// The lstat of a lower object as pagecow keeps it: plain numbers, and times exact to the
// nanosecond (bigint), whatever reads the lower (a directory through node:fs, a squashfs image).
import type { BigIntStats } from 'node:fs'

/** The lstat of a lower object, exact: times in nanoseconds. */
export interface LowerStat {
  ino: number
  /** st_mode: type and permission bits. */
  mode: number
  nlink: number
  uid: number
  gid: number
  rdev: number
  size: number
  blocks: number
  atimeNs: bigint
  mtimeNs: bigint
  ctimeNs: bigint
}

/** A LowerStat from node:fs's bigint stat. */
export function lowerStatOf(st: BigIntStats): LowerStat {
  return {
    ino: Number(st.ino),
    mode: Number(st.mode),
    nlink: Number(st.nlink),
    uid: Number(st.uid),
    gid: Number(st.gid),
    rdev: Number(st.rdev),
    size: Number(st.size),
    blocks: Number(st.blocks),
    atimeNs: st.atimeNs,
    mtimeNs: st.mtimeNs,
    ctimeNs: st.ctimeNs,
  }
}
