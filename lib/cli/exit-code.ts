// The exit codes of `pagecow`: a contract scripts rely on, listed in `pagecow --help` and the README.

/** Why a run ended, as its exit code. Codes never change meaning. */
export const EXIT = {
  /** The command did what was asked. */
  OK: 0,
  /** The command failed while working: no store, a busy store, a full disk, a refused lower... */
  ERROR: 1,
  /** The command line itself is wrong (an unknown command or option, a missing or malformed value): nothing was looked at or changed. */
  USAGE: 2,
  /** `pagecow fsck` ran to the end and found problems: the store is not clean. */
  NOT_CLEAN: 4,
} as const

export type ExitCode = (typeof EXIT)[keyof typeof EXIT]

/** The exit codes as `--help` and the README describe them. */
export const EXIT_CODES_HELP = `Exit codes:
  0  success
  1  the command failed (the error is printed as one line: pagecow: <message> (<CODE>))
  2  usage error: an unknown command or option, a missing or malformed value; nothing was done
  4  fsck found problems: the store is not clean
With --json (map: --output=json too), an error is also printed on stdout: {"error": {"code", "message"}}.`
