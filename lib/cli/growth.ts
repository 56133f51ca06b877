// What `write` and `zero` add to their line when they made the image bigger: a write past the end
// grows the disk silently in the library (as a file grows), and a typo in --offset should show.
import { describeBytes } from './format-size.js'

/** "; the image grew from 64.0 MiB … to …", or nothing when the size did not change. */
export function growthNote(before: number, after: number): string {
  return after > before ? `; the image grew from ${describeBytes(before)} to ${describeBytes(after)} (pagecow truncate STORE --size ${before} undoes it)` : ''
}
