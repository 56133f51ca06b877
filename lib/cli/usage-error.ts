// A command line that cannot be run as written: commander could not parse it, or a value is
// malformed. Reported as EINVAL with a hint to the command's help, exit code 2.
import type { CommanderError } from 'commander'

export class UsageError extends Error {
  /** commander's code, e.g. `commander.unknownOption`; `pagecow.invalidValue` for a bad value. */
  readonly commanderCode: string
  /** commander's exit code: 0 when help or the version was printed as asked. */
  readonly commanderExitCode: number
  /** The command whose help to point at, e.g. `pagecow read`. */
  readonly commandPath: string

  constructor(message: string, commandPath: string, commanderCode = 'pagecow.invalidValue', commanderExitCode = 1) {
    super(message)
    this.name = 'UsageError'
    this.commanderCode = commanderCode
    this.commanderExitCode = commanderExitCode
    this.commandPath = commandPath
  }

  /** From commander's error: "error: unknown option '--x'\n(Did you mean --y?)" becomes one line. */
  static fromCommander(err: CommanderError, commandPath: string): UsageError {
    const message = err.message
      .replace(/^error: /, '')
      .replace(/\s*\n\s*\(Did you mean/, '; did you mean')
      .replace(/\?\)$/, '?')
      .replace(/\s*\n\s*/g, ' ')
    return new UsageError(message, commandPath, err.code, err.exitCode)
  }

  /**
   * Help or the version was printed instead of an error line: as asked (commander's exit code 0),
   * or because no command was given (its exit code 1: the help went to stderr).
   */
  get printedHelp(): boolean {
    return this.message === '(outputHelp)' || this.commanderCode === 'commander.version' || this.commanderCode === 'commander.helpDisplayed'
  }
}
