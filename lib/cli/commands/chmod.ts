// `pagecow chmod STORE MODE PATH`: permission bits of an object of a tree store (metadata only).
import { Command, type ParseOptionsResult } from 'commander'
import { z } from 'zod'
import { writeTo, type CliIo } from '../cli-io.js'
import { configureCommand, examples } from '../command.js'
import { commonFlags, parseCommandLine } from '../options.js'
import { parseMode } from '../symbolic-mode.js'
import { withTreeStore } from '../with-any-store.js'
import { escapeName } from '../escape-name.js'

const modeChange = z.string().transform((text, ctx) => {
  try {
    return parseMode(text)
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: err instanceof Error ? err.message : String(err) })
    return z.NEVER
  }
})

const schema = z.strictObject({ store: z.string().min(1), mode: modeChange, path: z.string().min(1), ...commonFlags })

/** chmod(1)'s rule: one '-' then a mode character (`-w`, `-x,u+w`, `-644`) is a MODE, never an option. */
const DASH_MODE = /^-[rwxXstugoa0-7,+=]/

/** `chmod` as chmod(1) parses it: `-w` is the MODE, not an unknown option; `--x` still is an option. */
class ChmodCommand extends Command {
  override parseOptions(args: string[]): ParseOptionsResult {
    const operands: string[] = []
    const unknown: string[] = []
    let from = 0
    const parseUpTo = (end: number) => {
      const parsed = super.parseOptions(args.slice(from, end))
      operands.push(...parsed.operands)
      unknown.push(...parsed.unknown)
    }
    for (let i = 0; i < args.length && args[i] !== '--'; i++) {
      if (!DASH_MODE.test(args[i]!)) continue
      parseUpTo(i)
      operands.push(args[i]!)
      from = i + 1
    }
    parseUpTo(args.length)
    return { operands, unknown }
  }
}

export function chmodCommand(io: CliIo) {
  const cmd = configureCommand(new ChmodCommand('chmod'), io, 'pagecow chmod')
    .summary('set the permission bits of an object of a tree store')
    .description(
      "set the mode of PATH to MODE, octal (644, 4755) or symbolic as chmod(1) takes it with umask 0 (u+x, go-w, a=r, u=g, +X); a MODE beginning with '-' (-w) needs no '--'; a lower file is not copied, only its metadata is recorded",
    )
    .argument('<STORE>', 'the store directory')
    .argument('<MODE>', 'octal bits (0 to 7777) or symbolic clauses like u+x,go-w or -w')
    .argument('<PATH>', 'the object')
    .action(async (store: string, mode: string, path: string) => {
      const opts = parseCommandLine(cmd, schema, { store, mode, path })
      const bits = await withTreeStore(opts.store, {}, 'chmod', async (s) => {
        const { mode, type } = await s.stat(opts.path)
        const next = opts.mode(mode & 0o7777, type === 'directory')
        await s.chmod(opts.path, next)
        return next
      })
      await writeTo(io.stdout, `mode of ${escapeName(opts.path)} set to 0${bits.toString(8)}\n`)
    })
  return examples(cmd, ['pagecow chmod root.cow 600 /etc/shadow', 'pagecow chmod root.cow 4755 /usr/bin/tool', 'pagecow chmod root.cow go-w,u+x /usr/bin/tool', 'pagecow chmod root.cow -w /etc/hosts'])
}
