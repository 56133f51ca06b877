// How an apply makes a range of its target read zeros: a hole where the file system can punch
// one (so a restored file stays as sparse as the original), else zeros written.
import * as fs from '../fs.js'

/** Make [start, start + length) read zeros: a hole where the file system punches one, else zeros written. */
export function zeroRange(fd: number, start: number, length: number): void {
  try {
    fs.punchHole(fd, start, length)
    return
  } catch {
    // No hole punching here (or not for this range): write the zeros.
  }
  const zeros = Buffer.alloc(Math.min(length, 1024 * 1024))
  for (let done = 0; done < length; ) {
    const n = Math.min(zeros.length, length - done)
    done += fs.writeSync(fd, zeros, 0, n, start + done)
  }
}

