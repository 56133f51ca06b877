// What a paged file needs from its lower: sized, positional reads, and where the holes are.

/** A read-only lower of one file (a raw image now; squashfs or remote objects later). */
export interface LowerSource {
  /** Size in bytes. */
  readonly size: number
  /** Read up to `length` bytes at `position` into `target` at `targetOffset`; short at the end. */
  readInto(target: Uint8Array, targetOffset: number, length: number, position: number): number
  /** readInto in libuv's thread pool: reads of several requests overlap on the disk. */
  readIntoAsync(target: Uint8Array, targetOffset: number, length: number, position: number): Promise<number>
  /** The first offset at or after `position` that holds data, or null if none before the end. */
  nextData(position: number): number | null
  /** The first hole at or after `position`; the end of the lower counts as one. */
  nextHole(position: number): number
  close(): void
}

/** A lower that is all hole: what a file created in the upper has under it. */
export const EMPTY_LOWER: LowerSource = {
  size: 0,
  readInto: () => 0,
  readIntoAsync: async () => 0,
  nextData: () => null,
  nextHole: (position) => position,
  close: () => {},
}
