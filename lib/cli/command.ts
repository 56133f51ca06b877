// A pagecow command: commander set up to throw instead of exiting and to write to the run's io.
import { Command } from 'commander'
import type { CliIo } from './cli-io.js'
import { UsageError } from './usage-error.js'

/** Help wraps at this width whatever the terminal, so help text is the same everywhere. */
const HELP_WIDTH = 100

/** Describes a size option's accepted forms, for help texts. */
export const SIZE_FORMS = 'bytes, or with a binary suffix: 4k, 16M, 1G, 4KiB'

/** Set `cmd` up for a run on `io`: errors throw UsageError, output goes to io, `--debug` exists. */
export function configureCommand(cmd: Command, io: CliIo, commandPath: string): Command {
  return cmd
    .exitOverride((err) => {
      throw UsageError.fromCommander(err, commandPath)
    })
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
      outputError: () => {}, // reportError prints usage errors in pagecow's one-line form
      getOutHelpWidth: () => HELP_WIDTH,
      getErrHelpWidth: () => HELP_WIDTH,
      getOutHasColors: () => false,
      getErrHasColors: () => false,
    })
    .option('--debug', 'print stack traces with errors')
    .showSuggestionAfterError(true)
}

/** A new subcommand of `pagecow`, configured for `io`. */
export function newCommand(name: string, io: CliIo): Command {
  return configureCommand(new Command(name), io, `pagecow ${name}`)
}

/** Examples appended to a command's help. */
export function examples(cmd: Command, lines: string[]): Command {
  return cmd.addHelpText('after', `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`)
}
