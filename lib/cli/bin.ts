#!/usr/bin/env node
// The `pagecow` executable: main() on the process's streams; the only place that calls process.exit.
import { main } from './main.js'

// A FUSE server parks requests waiting on /dev/fuse in libuv's pool: give it room. Set before
// the pool's first use (it is made lazily).
process.env.UV_THREADPOOL_SIZE ??= '8'

// Write errors (a closed pipe) reach main() through write callbacks; without a listener they crash.
process.stdout.on('error', () => {})
process.stderr.on('error', () => {})

// Arguments Node could not decode (bytes that are not UTF-8 became U+FFFD) are taken again from the
// raw command line; the module loads only then, so `--version` stays light.
let argv = process.argv.slice(2)
if (argv.some((a) => a.includes('\ufffd'))) argv = (await import('./argv-bytes.js')).argvInNameForm(argv)

const code = await main(argv, {
  get stdin() {
    return process.stdin // created on first use only: an unread stdin must not keep the process alive
  },
  stdout: process.stdout,
  stderr: process.stderr,
  stdoutIsTTY: process.stdout.isTTY === true,
  stderrIsTTY: process.stderr.isTTY === true,
  env: process.env,
})
process.exit(code)
