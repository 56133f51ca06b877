// The streams and environment one CLI run talks to: the process's in bin.ts, captured ones in tests.
import type { Readable, Writable } from 'node:stream'

/** What `main()` reads from and writes to; nothing in the CLI touches `process` directly. */
export interface CliIo {
  /** Read by `pagecow write` when no `--input` is given. */
  stdin: Readable
  /** Command output: text, JSON, or the bytes of `pagecow read`. */
  stdout: Writable
  /** Error lines and progress bars. */
  stderr: Writable
  stdoutIsTTY: boolean
  /** Progress bars are drawn only when this is true. */
  stderrIsTTY: boolean
  /** The environment: `PAGECOW_DEBUG=1` acts as `--debug`. */
  env: Record<string, string | undefined>
}

/** Write to a stream and wait until it took the bytes, so a big read respects backpressure. */
export function writeTo(stream: Writable, data: string | Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.write(data, (err) => (err ? reject(err) : resolve()))
  })
}
