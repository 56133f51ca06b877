// Disk image formats a raw lower obviously is not. `pagecow create` refuses such a lower unless
// --lower-format raw says otherwise: overlaid as raw, a 1 GiB qcow2 becomes a small "image" of its
// own metadata. The magics are the ones qemu's format probes look for.
import { closeSync, openSync, readSync } from 'node:fs'

/** How many bytes of the lower the checks read. */
const PROBE_BYTES = 512

interface Signature {
  format: string
  offset: number
  magic: Buffer
}

const SIGNATURES: readonly Signature[] = [
  { format: 'qcow', offset: 0, magic: Buffer.from('QFI\xfb\0\0\0\x01', 'latin1') }, // version 1
  { format: 'qcow2', offset: 0, magic: Buffer.from('QFI\xfb', 'latin1') },
  { format: 'qed', offset: 0, magic: Buffer.from('QED\0', 'latin1') },
  { format: 'vmdk', offset: 0, magic: Buffer.from('KDMV') }, // a sparse extent
  { format: 'vmdk', offset: 0, magic: Buffer.from('COWD') }, // an ESX sparse extent
  { format: 'vmdk', offset: 0, magic: Buffer.from('# Disk DescriptorFile') },
  { format: 'vhdx', offset: 0, magic: Buffer.from('vhdxfile') },
  { format: 'vdi', offset: 0x40, magic: Buffer.from([0x7f, 0x10, 0xda, 0xbe]) },
  // A dynamic or differencing VHD starts with its footer's copy; a fixed VHD is raw data with a
  // footer at the end, and is taken as raw (as qemu's probe takes it).
  { format: 'vpc (VHD)', offset: 0, magic: Buffer.from('conectix') },
]

/** The image format `path` is obviously in, if not raw; undefined for anything that may be raw. */
export function nonRawFormat(path: string): string | undefined {
  const head = Buffer.alloc(PROBE_BYTES)
  const fd = openSync(path, 'r')
  let n: number
  try {
    n = readSync(fd, head, 0, PROBE_BYTES, 0)
  } finally {
    closeSync(fd)
  }
  return SIGNATURES.find((s) => s.offset + s.magic.length <= n && head.subarray(s.offset, s.offset + s.magic.length).equals(s.magic))?.format
}
