// The `pagecow` command line: parses argv, runs one command on the public API, returns an exit
// code. Only what the command needs is loaded: `--version` loads nothing but this file, `--help`
// only the command table and commander, a command its own module and the library parts it uses.
import { VERSION } from '../version.js'
import { writeTo, type CliIo } from './cli-io.js'
import { EXIT } from './exit-code.js'

export type { CliIo } from './cli-io.js'

/**
 * Run `pagecow` with `argv` (the arguments after the program name) on `io`. Returns the exit
 * code (see EXIT: 0 success, 1 failure, 2 usage error, 4 fsck found problems). Never calls
 * process.exit.
 */
export async function main(argv: string[], io: CliIo): Promise<number> {
  if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V')) {
    await writeTo(io.stdout, `${VERSION}\n`)
    return EXIT.OK
  }
  const { runProgram } = await import('./program.js')
  return runProgram(argv, io)
}
