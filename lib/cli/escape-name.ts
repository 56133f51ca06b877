// How the CLI prints a name (or a path) for people: as `ls -b` does in a UTF-8 locale, so that
// every name, UTF-8 or not, prints on one line and can be told apart from every other. Bytes that
// are not UTF-8 (escapes in name form: name-bytes.ts), controls and DEL become backslash escapes;
// a space and a backslash are escaped too. --json prints names losslessly instead.
import { nameToBytes } from '../name-bytes.js'

const C_ESCAPES: Record<number, string> = { 7: '\\a', 8: '\\b', 9: '\\t', 10: '\\n', 11: '\\v', 12: '\\f', 13: '\\r' }

export function escapeName(name: string): string {
  let out = ''
  for (const ch of name) {
    const c = ch.codePointAt(0)!
    if (c === 0x20) out += '\\ '
    else if (c === 0x5c) out += '\\\\'
    else if (c < 0x20) out += C_ESCAPES[c] ?? octal(c)
    else if (c === 0x7f || (c >= 0x80 && c <= 0x9f)) out += [...Buffer.from(ch, 'utf8')].map(octal).join('')
    else if (c >= 0xdc80 && c <= 0xdcff) out += [...nameToBytes(ch)].map(octal).join('') // a byte that is not UTF-8
    else out += ch
  }
  return out
}

function octal(byte: number): string {
  return `\\${byte.toString(8).padStart(3, '0')}`
}
