// Splits a byte stream into newline-terminated lines without ever holding more than a cap of one
// unfinished line: a peer that sends a gigabyte with no newline costs at most `maxBytes`.

export class LineTooLongError extends Error {}

export class LineSplitter {
  readonly #maxBytes: number
  #pending: Buffer[] = []
  #pendingBytes = 0

  /** `maxBytes`: the longest line accepted, its newline excluded. */
  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes
  }

  /** The lines `chunk` completes (UTF-8, newline and a trailing CR removed); LineTooLongError past the cap. */
  push(chunk: Buffer): string[] {
    const lines: string[] = []
    let start = 0
    for (let nl = chunk.indexOf(10, start); nl >= 0; nl = chunk.indexOf(10, start)) {
      if (this.#pendingBytes + nl - start > this.#maxBytes) throw new LineTooLongError(`a line longer than ${this.#maxBytes} bytes`)
      this.#pending.push(chunk.subarray(start, nl))
      let line = Buffer.concat(this.#pending).toString('utf8')
      if (line.endsWith('\r')) line = line.slice(0, -1)
      lines.push(line)
      this.#pending = []
      this.#pendingBytes = 0
      start = nl + 1
    }
    if (start < chunk.length) {
      this.#pendingBytes += chunk.length - start
      if (this.#pendingBytes > this.#maxBytes) throw new LineTooLongError(`a line longer than ${this.#maxBytes} bytes`)
      // A copy: the socket's chunk may be a slice of a larger buffer we would otherwise pin.
      this.#pending.push(Buffer.from(chunk.subarray(start)))
    }
    return lines
  }

  /** Bytes of an unfinished line held. */
  get pendingBytes(): number {
    return this.#pendingBytes
  }
}
