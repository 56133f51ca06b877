// The `pagecow` command line: parses argv, runs one command on the public API, returns an exit code.
import { Command } from 'commander'
import { VERSION } from '../index.js'
import type { CliIo } from './cli-io.js'
import { configureCommand } from './command.js'
import { createCommand } from './commands/create.js'
import { demoCommand } from './commands/demo.js'
import { discardCommand } from './commands/discard.js'
import { exportCommand } from './commands/export.js'
import { flushCommand } from './commands/flush.js'
import { fsckCommand } from './commands/fsck.js'
import { inspectCommand } from './commands/inspect.js'
import { mapCommand } from './commands/map.js'
import { readCommand } from './commands/read.js'
import { serveCommand } from './commands/serve.js'
import { mountCommand } from './commands/mount.js'
import { umountCommand } from './commands/umount.js'
import { truncateCommand } from './commands/truncate.js'
import { writeCommand } from './commands/write.js'
import { zeroCommand } from './commands/zero.js'
import { chmodCommand } from './commands/chmod.js'
import { lsCommand } from './commands/ls.js'
import { mkdirCommand } from './commands/mkdir.js'
import { mvCommand } from './commands/mv.js'
import { rmCommand } from './commands/rm.js'
import { rmdirCommand } from './commands/rmdir.js'
import { statCommand } from './commands/stat.js'
import { symlinkCommand } from './commands/symlink.js'
import { reportError } from './report-error.js'

export type { CliIo } from './cli-io.js'

const COMMANDS = [
  createCommand,
  inspectCommand,
  mapCommand,
  readCommand,
  writeCommand,
  zeroCommand,
  discardCommand,
  truncateCommand,
  flushCommand,
  fsckCommand,
  exportCommand,
  serveCommand,
  mountCommand,
  umountCommand,
  demoCommand,
  // Tree stores: the namespace.
  lsCommand,
  statCommand,
  mkdirCommand,
  rmdirCommand,
  rmCommand,
  mvCommand,
  chmodCommand,
  symlinkCommand,
]

/**
 * Run `pagecow` with `argv` (the arguments after the program name) on `io`. Returns the exit
 * code: 0 on success, 1 on any error (printed as one line on stderr). Never calls process.exit.
 */
export async function main(argv: string[], io: CliIo): Promise<number> {
  const program = configureCommand(new Command('pagecow'), io, 'pagecow')
    .description('pagecow: a page-granular copy-on-write store over a raw disk image or a directory tree')
    .version(VERSION, '-V, --version', 'print the version')
    .addHelpText('after', "\nRun 'pagecow <command> --help' for a command's options, or 'pagecow demo' to see one at work.\n")
  for (const make of COMMANDS) program.addCommand(make(io))
  try {
    await program.parseAsync(argv, { from: 'user' })
    return 0
  } catch (err) {
    return reportError(err, io, wantsDebug(argv, io))
  }
}

/** `--debug` anywhere before `--`, or PAGECOW_DEBUG=1: known even when parsing failed. */
function wantsDebug(argv: string[], io: CliIo): boolean {
  const end = argv.indexOf('--')
  return (end === -1 ? argv : argv.slice(0, end)).includes('--debug') || io.env.PAGECOW_DEBUG === '1'
}
