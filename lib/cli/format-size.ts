// Human sizes for people: "512 B", "4.0 KiB", "1.5 GiB" (binary units, one decimal).

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB']

/** Format a byte count with a binary unit and one decimal; under 1 KiB as whole bytes. */
export function formatSize(bytes: number): string {
  if (!Number.isFinite(bytes)) return `${bytes} B`
  if (bytes < 0) return `-${formatSize(-bytes)}`
  if (bytes < 1024) return `${Math.round(bytes)} B`
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024
    unit++
  }
  // 1023.96 KiB would print as "1024.0 KiB": say "1.0 MiB" instead.
  if (value.toFixed(1) === '1024.0' && unit < UNITS.length - 1) {
    value /= 1024
    unit++
  }
  return `${value.toFixed(1)} ${UNITS[unit]}`
}

/** An exact byte count for messages, with the human size when it helps: "1 byte", "8192 bytes (8.0 KiB)". */
export function describeBytes(bytes: number): string {
  if (bytes === 1) return '1 byte'
  return bytes < 1024 ? `${bytes} bytes` : `${bytes} bytes (${formatSize(bytes)})`
}
