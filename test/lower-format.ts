// `pagecow create` refuses a lower that is obviously not raw, judged against qemu-img: for images
// qemu-img makes in every format it writes, and for raw files of several kinds, pagecow refuses
// exactly those that `qemu-img info` does not call raw, and --lower-format raw overrides it.
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { nonRawFormat } from '../lib/cli/lower-format.js'
import { cannotRun } from './fixtures/cannot-run.js'
import { runCli } from './fixtures/cli-io.js'

function have(command: string): boolean {
  try {
    execFileSync(command, ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** The format `qemu-img info` probes `path` to be. */
function qemuFormat(path: string): string {
  return (JSON.parse(execFileSync('qemu-img', ['info', '--output=json', path], { encoding: 'utf8' })) as { format: string }).format
}

t.test('pagecow and qemu-img agree on which lowers are raw', async (t) => {
  if (!have('qemu-img')) return cannotRun(t, 'qemu-img is not on PATH (install qemu-utils)')
  const dir = t.testdir()
  const images: Array<[string, string[]]> = [
    ['x.qcow2', ['-f', 'qcow2']],
    ['x.qcow', ['-f', 'qcow']],
    ['x.qed', ['-f', 'qed']],
    ['x.vmdk', ['-f', 'vmdk']],
    ['stream.vmdk', ['-f', 'vmdk', '-o', 'subformat=streamOptimized']],
    ['flat.vmdk', ['-f', 'vmdk', '-o', 'subformat=monolithicFlat']], // a text descriptor (and flat-flat.vmdk, raw)
    ['x.vhdx', ['-f', 'vhdx']],
    ['x.vdi', ['-f', 'vdi']],
    ['dynamic.vhd', ['-f', 'vpc']],
    ['fixed.vhd', ['-f', 'vpc', '-o', 'subformat=fixed']], // raw data and a footer at the end
    ['x.raw', ['-f', 'raw']],
  ]
  const paths: string[] = []
  for (const [name, args] of images) {
    execFileSync('qemu-img', ['create', '-q', ...args, join(dir, name), '1M'])
    paths.push(join(dir, name))
  }
  paths.push(join(dir, 'flat-flat.vmdk'))
  for (const [name, bytes] of [
    ['random.img', randomBytes(1 << 20)],
    ['text.img', Buffer.from('# Disk image? no, a shell script\n'.repeat(100))],
    ['tiny.img', Buffer.from('QFI')], // shorter than any magic
  ] as const) {
    writeFileSync(join(dir, name), bytes)
    paths.push(join(dir, name))
  }
  let refused = 0
  for (const path of paths) {
    const name = path.slice(dir.length + 1)
    const qemu = qemuFormat(path)
    const ours = nonRawFormat(path)
    t.equal(ours === undefined, qemu === 'raw', `${name}: qemu-img says ${qemu}, pagecow ${ours ?? 'raw'}`)
    if (ours !== undefined) t.equal(ours.split(' ')[0], qemu, `${name}: the same format name`)
    const store = join(dir, `store-${name}`)
    const created = await runCli(['create', store, '--lower', path])
    if (qemu === 'raw') {
      t.equal(created.code, 0, `${name}: a raw lower is taken (${created.stderr})`)
      continue
    }
    refused++
    t.equal(created.code, 1, `${name}: refused`)
    t.match(created.stderr, new RegExp(`^pagecow: create: the lower .*${name} is a ${qemu}\\b.* image, not a raw one.*--lower-format raw.* \\(EINVAL\\)\\n$`), `${name}: says what it is and what to do`)
    const forced = await runCli(['create', store, '--lower', path, '--lower-format', 'raw'])
    t.equal(forced.code, 0, `${name}: --lower-format raw takes it as raw (${forced.stderr})`)
  }
  t.equal(refused, 9, 'every non-raw format qemu-img made was refused')
})
