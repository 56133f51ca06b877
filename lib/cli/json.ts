// The CLI's --json output: the library's plain data as JSON. Nanosecond times (bigints) print as
// decimal strings (JSON numbers cannot hold them exactly); names that are not UTF-8 keep their
// name form, whose escapes JSON writes as \udcXX: lossless (name-bytes.ts says how to decode).
export function formatJson(value: unknown, indent?: number): string {
  return `${JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), indent)}\n`
}
