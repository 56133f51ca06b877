// A command line commander could not parse: reported as EINVAL with a hint to the command's help.
import type { CommanderError } from 'commander'

export class UsageError extends Error {
  /** commander's code, e.g. `commander.unknownOption`. */
  readonly commanderCode: string
  /** 0 when help or the version was printed as asked; 1 otherwise. */
  readonly exitCode: number
  /** The command whose help to point at, e.g. `pagecow read`. */
  readonly commandPath: string

  constructor(err: CommanderError, commandPath: string) {
    // commander says "error: unknown option '--x'\n(Did you mean --y?)": keep it to one line.
    super(err.message.replace(/^error: /, '').replace(/\s*\n\s*\(Did you mean/, '; did you mean').replace(/\?\)$/, '?').replace(/\s*\n\s*/g, ' '))
    this.name = 'UsageError'
    this.commanderCode = err.code
    this.exitCode = err.exitCode
    this.commandPath = commandPath
  }

  /** Help or the version was printed (as asked or because no command was given): no error line. */
  get helpShown(): boolean {
    return this.message === '(outputHelp)' || this.commanderCode === 'commander.version' || this.commanderCode === 'commander.helpDisplayed'
  }
}
