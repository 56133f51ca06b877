// The whole command line: commander with every command listed, the one this run names loaded in
// full (its options, validation and work), the others only as their help line.
import { Command } from 'commander'
import { VERSION } from '../version.js'
import type { CliIo } from './cli-io.js'
import { configureCommand } from './command.js'
import { COMMANDS, type CommandEntry } from './command-list.js'
import { EXIT, EXIT_CODES_HELP } from './exit-code.js'
import { reportError } from './report-error.js'

/** Parse `argv`, run the command it names and return the exit code (main() without the fast paths). */
export async function runProgram(argv: string[], io: CliIo): Promise<number> {
  const wanted = commandNameIn(argv)
  try {
    const program = configureCommand(new Command('pagecow'), io, 'pagecow')
      .description('pagecow: a page-granular copy-on-write store over a raw disk image or a directory tree')
      .version(VERSION, '-V, --version', 'print the version')
      .addHelpText('after', `\nRun 'pagecow <command> --help' for a command's options, or 'pagecow demo' to see one at work.\n\n${EXIT_CODES_HELP}\n`)
    for (const entry of COMMANDS) program.addCommand(entry.name === wanted ? (await entry.load())(io) : listed(entry, io))
    await program.parseAsync(argv, { from: 'user' })
    return EXIT.OK
  } catch (err) {
    return reportError(err, io, { debug: wantsDebug(argv, io), json: wantsJson(argv, wanted), command: wanted })
  }
}

/** A command as `pagecow --help` lists it, without loading its module. */
function listed(entry: CommandEntry, io: CliIo): Command {
  return configureCommand(new Command(entry.name), io, `pagecow ${entry.name}`).summary(entry.summary).arguments(entry.args)
}

/** The arguments before `--`: options there are pagecow's, after it they are operands. */
function optionPart(argv: string[]): string[] {
  const end = argv.indexOf('--')
  return end === -1 ? argv : argv.slice(0, end)
}

/**
 * The command `argv` runs (or asks help for: `pagecow help map`), if any. pagecow's own options
 * (--debug, --help, --version) take no value, so the first word that is not an option is it.
 */
export function commandNameIn(argv: string[]): string | undefined {
  const words = optionPart(argv).filter((a) => !a.startsWith('-'))
  return words[0] === 'help' ? words[1] : words[0]
}

/** `--debug` anywhere before `--`, or PAGECOW_DEBUG=1: known even when parsing failed. */
function wantsDebug(argv: string[], io: CliIo): boolean {
  return optionPart(argv).includes('--debug') || io.env.PAGECOW_DEBUG === '1'
}

/** `--json`, or map's `--output=json`: the error is printed as JSON too, known even when parsing failed. */
function wantsJson(argv: string[], command: string | undefined): boolean {
  const args = optionPart(argv)
  if (args.includes('--json')) return true
  return command === 'map' && (args.includes('--output=json') || args.some((a, i) => a === '--output' && args[i + 1] === 'json'))
}
