import t from 'tap'
import { parseSize } from '../lib/cli/parse-size.js'

t.test('plain bytes and binary suffixes, case-insensitive', async (t) => {
  const cases: Array<[string, number]> = [
    ['0', 0],
    ['4096', 4096],
    ['007', 7],
    ['512b', 512],
    ['512B', 512],
    ['4k', 4096],
    ['4K', 4096],
    ['4KiB', 4096],
    ['4kib', 4096],
    ['16M', 16 * 2 ** 20],
    ['16mib', 16 * 2 ** 20],
    ['1G', 2 ** 30],
    ['1GiB', 2 ** 30],
    ['2T', 2 * 2 ** 40],
    ['2tib', 2 * 2 ** 40],
    ['4P', 4 * 2 ** 50],
    [' 64k ', 65536],
    ['4 KiB', 4096],
    [String(Number.MAX_SAFE_INTEGER), Number.MAX_SAFE_INTEGER],
  ]
  for (const [text, bytes] of cases) t.equal(parseSize(text), bytes, JSON.stringify(text))
})

t.test('negatives, fractions, garbage and huge values are EINVAL', async (t) => {
  const bad = ['', ' ', '-1', '-4k', '1.5', '1.5G', '0.5k', 'abc', '4x', '4kb', '4MB', '4 K B', 'k', '0x1000', '1e3', '1_000', '1,000', '+5', String(2 ** 53), '8192P', '99999999999999999999']
  for (const text of bad) {
    t.throws(() => parseSize(text), { name: 'PagecowError', code: 'EINVAL' }, JSON.stringify(text))
  }
})

t.test('the message says what is wrong and quotes the input', async (t) => {
  t.throws(() => parseSize('-4k'), { message: /"-4k" is negative/ })
  t.throws(() => parseSize('1.5G'), { message: /whole number/ })
  t.throws(() => parseSize('4q'), { message: /unknown suffix "q"/ })
  t.throws(() => parseSize('9999999999P'), { message: /too large/ })
})
