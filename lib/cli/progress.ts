// A progress bar on stderr for work that runs past a second, drawn only when stderr is a terminal.
// cli-progress is loaded only then: a command in a script never loads it.
import type { SingleBar } from 'cli-progress'
import type { CliIo } from './cli-io.js'
import { formatSize } from './format-size.js'

/** Work shorter than this shows no bar at all. */
const SHOW_AFTER_MS = 1000

export interface Progress {
  /** `done` units of `total` are done. */
  update(done: number): void
  /** Remove the bar (if one was drawn). */
  stop(): void
}

/**
 * A progress reporter for `total` units of work labelled `label`; silent unless stderr is a TTY.
 * Units are bytes unless `format` says otherwise (e.g. objects of a tree).
 */
export function startProgress(io: CliIo, label: string, total: number, format: (n: number) => string = formatSize): Progress {
  if (!io.stderrIsTTY || total <= 0) return { update() {}, stop() {} }
  const started = Date.now()
  let cliProgress: typeof import('cli-progress') | undefined
  void import('cli-progress').then((m) => (cliProgress = m.default), () => {})
  let bar: SingleBar | undefined
  return {
    update(done) {
      if (!bar) {
        if (Date.now() - started < SHOW_AFTER_MS || !cliProgress) return
        bar = new cliProgress.SingleBar(
          {
            stream: io.stderr,
            format: `${label} [{bar}] {percentage}% | {doneText} of {totalText} | ETA {eta_formatted}`,
            hideCursor: true,
            clearOnComplete: true,
          },
          cliProgress.Presets.shades_classic,
        )
        bar.start(total, done, { doneText: format(done), totalText: format(total) })
        return
      }
      bar.update(done, { doneText: format(done) })
    },
    stop() {
      bar?.stop()
    },
  }
}
