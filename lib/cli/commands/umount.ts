// `pagecow umount MOUNTPOINT`: unmount a pagecow mount (served, or left by a killed server) and
// wait until its server has flushed and let go of the store; --lazy detaches a busy mount and
// returns at once; --abort first cuts the connection of a server that hangs.
import { z } from 'zod'
import { unmountStore } from '../../fuse/store-mount.js'
import { writeTo, type CliIo } from '../cli-io.js'
import { examples, newCommand } from '../command.js'
import { commonFlags, countValue, parseCommandLine } from '../options.js'

const schema = z.strictObject({
  mountpoint: z.string().min(1, 'the mount point is required'),
  lazy: z.boolean().optional(),
  abort: z.boolean().optional(),
  waitMs: countValue(0, 3_600_000).optional(),
  json: z.boolean().optional(),
  ...commonFlags,
})

export function umountCommand(io: CliIo) {
  const cmd = newCommand('umount', io)
    .summary('unmount a mounted store')
    .description('unmount a store mounted with `pagecow mount` and wait until its server has flushed and released the store; also clears the mount a killed server left behind')
    .argument('<MOUNTPOINT>', 'the mount point')
    .option('--lazy', 'detach even while files on the mount are open (umount -l) and return at once; the server lets go of the store when the last of them closes')
    .option('--abort', 'first cut the FUSE connection (fusectl), for a server that hangs: whatever waits on it fails at once (ECONNABORTED), and a busy mount is detached as with --lazy')
    .option('--wait-ms <N>', 'how long to wait for the server to release the store (after an unmount that was not left to --lazy); default 60000')
    .option('--json', 'print one JSON line')
    .action(async (mountpoint: string) => {
      const opts = parseCommandLine(cmd, schema, { mountpoint })
      const store = await unmountStore(mountpoint, { lazy: opts.lazy === true, abort: opts.abort === true, ...(opts.waitMs === undefined ? {} : { waitMs: opts.waitMs }) })
      await writeTo(io.stdout, opts.json ? `${JSON.stringify({ mountpoint, store })}\n` : `unmounted ${mountpoint} (${store})\n`)
    })
  return examples(cmd, ['pagecow umount /mnt/rootfs', 'pagecow umount --lazy /mnt/rootfs', 'pagecow umount --abort /mnt/rootfs'])
}
