// Names as bytes (SPEC §6): the PEP 383 form round-trips every byte string, and refuses strings
// that are no name's form.
import t from 'tap'
import { byteLength, compareNameBytes, fsPath, isNameForm, nameFromBytes, nameToBytes } from '../lib/name-bytes.js'
import { Random } from './fixtures/random.js'

t.test('UTF-8 names are their characters; other bytes are escaped one by one', async (t) => {
  t.equal(nameFromBytes(Buffer.from('café.txt')), 'café.txt')
  t.equal(nameFromBytes(Buffer.from([0x63, 0x61, 0x66, 0xe9])), 'caf\udce9', 'Latin-1 é is one escape')
  t.equal(nameFromBytes(Buffer.from([0xc3, 0xa9, 0xe9])), 'é\udce9', 'valid and invalid in one name')
  t.equal(nameFromBytes(Buffer.from([0xed, 0xa0, 0x80])), '\udced\udca0\udc80', 'an encoded surrogate is three invalid bytes')
  t.equal(nameFromBytes(Buffer.from([0xc0, 0xaf])), '\udcc0\udcaf', 'an overlong "/" is two invalid bytes')
  t.equal(nameFromBytes(Buffer.from([0xf0, 0x9f, 0x98, 0x80])), '😀', 'a four-byte character')
  t.equal(nameFromBytes(Buffer.from([0xf4, 0x90, 0x80, 0x80])), '\udcf4\udc90\udc80\udc80', 'past U+10FFFF is invalid')
})

t.test('every byte string round-trips', async (t) => {
  const rng = new Random(7)
  for (let i = 0; i < 5000; i++) {
    const bytes = Buffer.alloc(rng.int(1, 40))
    for (let k = 0; k < bytes.length; k++) bytes[k] = rng.chance(0.5) ? rng.int(0x80, 256) : rng.int(1, 256)
    const name = nameFromBytes(bytes)
    if (!nameToBytes(name).equals(bytes)) t.fail(`${bytes.toString('hex')} did not round-trip`)
    if (byteLength(name) !== bytes.length) t.fail(`${bytes.toString('hex')}: byteLength ${byteLength(name)}`)
  }
  t.pass('5000 random byte strings round-trip, byteLength exact')
})

t.test('strings that are no name form are refused', async (t) => {
  t.throws(() => nameToBytes('a\ud800b'), RangeError, 'a lone high surrogate')
  t.throws(() => nameToBytes('a\udc41'), RangeError, 'a lone low surrogate below the escapes')
  t.throws(() => nameToBytes('\udcc3\udca9'), RangeError, 'escapes of a valid sequence (é) must be written as é')
  t.notOk(isNameForm('\udcc3\udca9'))
  t.ok(isNameForm('caf\udce9'))
  t.ok(isNameForm('plain'))
})

t.test('byte order and fs paths', async (t) => {
  const names = ['b', 'a', 'é', 'caf\udce9', 'café', '😀', '\ufffd', 'z']
  const sorted = [...names].sort(compareNameBytes)
  const byBytes = [...names].sort((a, b) => Buffer.compare(nameToBytes(a), nameToBytes(b)))
  t.same(sorted, byBytes)
  t.equal(fsPath('/tmp/café'), '/tmp/café', 'a UTF-8 path stays a string')
  t.same(fsPath('/tmp/caf\udce9'), Buffer.from([...Buffer.from('/tmp/caf'), 0xe9]), 'an escaped path becomes its bytes')
})
