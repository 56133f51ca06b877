// Store errors become the NBD error values the protocol allows.
import t from 'tap'
import { PagecowError, type ErrorCode } from '../lib/index.js'
import { nbdErrnoOf, NbdRequestError } from '../lib/nbd/errors.js'

const table: Array<[ErrorCode, number]> = [
  ['EINVAL', 22],
  ['ENOSPC', 28],
  ['EFBIG', 28],
  ['EROFS', 1],
  ['EACCES', 1],
  ['ECLOSED', 108],
  ['EIO', 5],
  ['ECORRUPT', 5],
  ['ESTALE', 5],
  ['EBUSY', 5],
]

t.test('PagecowError codes map to NBD errors', async (t) => {
  for (const [code, errno] of table) t.equal(nbdErrnoOf(new PagecowError(code, 'x')), errno, code)
})

t.test('request errors keep their value; anything else is EIO', async (t) => {
  t.equal(nbdErrnoOf(new NbdRequestError(75, 'overflow')), 75)
  t.equal(nbdErrnoOf(new Error('surprise')), 5)
  t.equal(nbdErrnoOf('not even an error'), 5)
})
