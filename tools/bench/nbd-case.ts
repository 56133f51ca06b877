// The NBD benchmark as a case of `npm run bench` (id and group `nbd`): pagecow's NBD server
// against nbdkit's cow filter (and qemu-nbd on a qcow2 overlay) over the shared data lower.
import type { BenchCase } from './bench-case.js'
import * as fmt from './format.js'
import { runNbdBench } from './nbd.js'
import type { Row } from './row.js'

export const nbdCase: BenchCase = {
  id: 'nbd',
  group: 'nbd',
  number: 8,
  title: 'NBD server: sequential read (nbdcopy), random 4 KiB writes (fio), upper space, against nbdkit cow',
  async run(ctx) {
    const result = await runNbdBench({
      lower: ctx.dataLower(),
      writes: ctx.config.quick ? 2048 : 16384,
      runs: ctx.config.quick ? 1 : 3,
      log: (line) => ctx.log(line),
    })
    const pc = result.servers.find((s) => s.name === 'pagecow')
    const kit = result.servers.find((s) => s.name === 'nbdkit cow')
    if (!pc || !kit) {
      return [skipped('skipped: nbdkit not installed (Debian: nbdkit)')]
    }
    const row = (label: string, pagecow: string, baseline: string, ratio: number | null, kind: 'throughput' | 'time', target: string, met: boolean): Row => ({
      case: 'nbd',
      label,
      pagecow,
      baseline: `${baseline} (nbdkit cow)`,
      ratio,
      ratioKind: kind,
      ratioRange: null,
      target,
      met,
      details: { ...result },
    })
    const { read, coldRead, write, space } = result.ratios
    return [
      row('sequential read of the unmodified image, nbdcopy to null:', `${fmt.bytes(pc.readBytesPerSecond)}/s`, `${fmt.bytes(kit.readBytesPerSecond)}/s`, read, 'throughput', '≥ 0.7×', (read ?? 0) >= 0.7),
      // No target of its own: shown beside the warm read (the target is for that one).
      { ...row('the same read with the lower dropped from the page cache first', `${fmt.bytes(pc.coldReadBytesPerSecond)}/s`, `${fmt.bytes(kit.coldReadBytesPerSecond)}/s`, coldRead, 'throughput', '', false), target: null, met: null },
      row(`random 4 KiB writes, ${result.servers[0]?.writeTool ?? 'fio'}`, `${pc.writeIops.toFixed(0)} IOPS`, `${kit.writeIops.toFixed(0)} IOPS`, write, 'throughput', '≥ 0.7×', (write ?? 0) >= 0.7),
      row('upper space after the writes', fmt.bytes(pc.upperBytes), fmt.bytes(kit.upperBytes), space, 'time', '≤ 1×', (space ?? Infinity) <= 1),
    ]
  },
}

function skipped(label: string): Row {
  return { case: 'nbd', label, pagecow: '', baseline: '', ratio: null, ratioKind: null, ratioRange: null, target: null, met: null, details: {} }
}
