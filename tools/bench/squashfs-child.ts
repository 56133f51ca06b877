// Child process of the squashfs case: reads files of a squashfs image through pagecow's reader
// (`image`) or through the kernel's mount of it (`kernel`), then prints what it read, how long
// it took and its peak RSS (VmHWM).
//   squashfs-child.ts image IMAGE [PATH]     every file of IMAGE, or only PATH in it
//   squashfs-child.ts kernel DIR [PATH]      every file under DIR, or only DIR/PATH
import * as fs from 'node:fs'
import { join } from 'node:path'
import { SquashfsImage } from '../../lib/squashfs/squashfs-image.js'
import type { SquashfsInode } from '../../lib/squashfs/inode.js'

const [mode, where, only] = process.argv.slice(2)
const CHUNK = 1 << 20
const buf = Buffer.allocUnsafe(CHUNK)
let files = 0
let bytes = 0
const t0 = process.hrtime.bigint()

if (mode === 'image') {
  const img = SquashfsImage.open(where!)
  const readFile = (inode: SquashfsInode): void => {
    files++
    for (;;) {
      const n = img.read(inode, buf, 0, CHUNK, bytes - start)
      if (n === 0) break
      bytes += n
    }
  }
  let start = 0
  const visit = (inode: SquashfsInode): void => {
    if (inode.type === 'file') {
      start = bytes
      readFile(inode)
    } else if (inode.type === 'directory') {
      for (const e of img.readdir(inode)) visit(img.entryInode(e))
    }
  }
  if (only) {
    let inode: SquashfsInode = img.root
    for (const part of only.split('/').filter(Boolean)) inode = img.lookup(inode, Buffer.from(part))!
    visit(inode)
  } else {
    visit(img.root)
  }
  img.close()
} else if (mode === 'kernel') {
  const readFile = (path: string): void => {
    files++
    const fd = fs.openSync(path, 'r')
    try {
      for (;;) {
        const n = fs.readSync(fd, buf, 0, CHUNK, null)
        if (n === 0) break
        bytes += n
      }
    } finally {
      fs.closeSync(fd)
    }
  }
  const visit = (path: string): void => {
    const st = fs.lstatSync(path)
    if (st.isFile()) readFile(path)
    else if (st.isDirectory()) for (const n of fs.readdirSync(path)) visit(join(path, n))
  }
  visit(only ? join(where!, only) : where!)
} else {
  throw new Error(`squashfs-child: unknown mode ${String(mode)}`)
}

const ms = Number(process.hrtime.bigint() - t0) / 1e6
const kib = /^VmHWM:\s+(\d+) kB$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1]
process.stdout.write(`${JSON.stringify({ mode, files, bytes, ms, maxRssBytes: Number(kib ?? 0) * 1024 })}\n`)
