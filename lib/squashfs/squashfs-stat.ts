// What stat() of a squashfs object returns: lstat-like plain data, as the kernel's squashfs
// reports it for the same image.
import type { SquashfsFileType } from './file-type.js'

export interface SquashfsStat {
  inodeNumber: number
  type: SquashfsFileType
  /** Permission bits (07777); `typeBits(type) | mode` is st_mode. */
  mode: number
  uid: number
  gid: number
  nlink: number
  /** A device node's number in the encoding lstat returns (glibc makedev), else 0. */
  rdev: number
  /** Bytes: a file's length, a symlink target's length, a directory's listing size plus 3. */
  size: number
  /** 512-byte units, as the kernel reports them (a file's bytes less its sparse bytes). */
  blocks: number
  /** Modification time in nanoseconds since the epoch (squashfs keeps whole seconds). */
  mtimeNs: bigint
}

/**
 * The lstat encoding of a device number stored as Linux's new_encode_dev (12-bit major, 20-bit
 * minor in 32 bits): glibc's makedev of the same major and minor.
 */
export function rdevOf(device: number): number {
  const major = (device & 0xfff00) >>> 8
  const minor = (device & 0xff) | ((device >>> 12) & 0xfff00)
  return (major & 0xfff) * 256 + (minor & 0xff) + (minor & ~0xff) * 4096 + Math.floor(major / 4096) * 2 ** 32
}
