// `pagecow fsck` found problems: its report is already printed (on stdout, also with --json), the
// run ends with EXIT.NOT_CLEAN and a one-line summary on stderr.
import { PagecowError } from '../errors.js'

export class NotCleanError extends PagecowError {}
