// Whether bytes are all zeros: one memcmp per megabyte against a shared zero buffer. Export
// (sparse output), incrementals (ZERO records), compaction and detect-zeroes all ask it.

const ZEROS = Buffer.alloc(1024 * 1024)

export function isZero(bytes: Uint8Array): boolean {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  for (let at = 0; at < view.length; at += ZEROS.length) {
    const n = Math.min(ZEROS.length, view.length - at)
    if (view.compare(ZEROS, 0, n, at, at + n) !== 0) return false
  }
  return true
}
