// How the inode numbers of several lowers, and of another store's merged tree, become inode
// numbers of one lower (below UPPER_INO_BASE, 2^48), unique and the same at every open (the upper
// records objects by them). The layers are different file systems whose numbers overlap, so each
// layer's numbers are spread apart by multiplication, the layer's index in the remainder: the
// top lower of a stack of n gets x·n, the next x·n + 1, and so on. A lone lower keeps its own
// numbers (n = 1). A store as a lower has numbers of two kinds, its lowers' (below 2^48) and its
// upper's (2^48 and up): they become even (2m) and odd (2(m - 2^48) + 1). Every step costs a few
// bits of the 48 (four for sixteen lowers, one for a store): a number that does not fit is EIO,
// never a collision. Lower file systems number from small values (ext4 and squashfs in 32 bits).
import { PagecowError } from '../errors.js'
import { UPPER_INO_BASE } from './ino.js'

/** The number of layer `index`'s object `ino` in a stack of `layers`. */
export function stackIno(ino: number, index: number, layers: number, where: () => string): number {
  const mapped = ino * layers + index
  if (mapped >= UPPER_INO_BASE) {
    throw new PagecowError('EIO', `${where()} has inode number ${ino}, too large to keep apart from the other ${layers - 1} lowers' (below ${Math.floor(UPPER_INO_BASE / layers)} fits)`)
  }
  return mapped
}

/** The number a store lower gives the object its store numbers `ino`. */
export function storeIno(ino: number, where: () => string): number {
  const mapped = ino < UPPER_INO_BASE ? 2 * ino : 2 * (ino - UPPER_INO_BASE) + 1
  if (mapped >= UPPER_INO_BASE) throw new PagecowError('EIO', `${where()} has inode number ${ino}, too large to number in the store made on it`)
  return mapped
}
