// SharedMemory: SQLite's -shm file of a store has no holes once a store is open, on a 1 KiB-block
// ext4 where SQLite alone leaves three of every four blocks unallocated; a writer reserves room for
// it to grow; other processes opening the store meanwhile join the file instead of truncating it;
// the last connection of a process lets it go. (What the holes did, SIGBUS on a full disk, is
// tested end to end in test/full-disk.ts.)
import { execFileSync, spawn } from 'node:child_process'
import { writeFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { ImageStore } from '../lib/index.js'
import { childEnv } from './fixtures/child-env.js'
import { pagecow, ROOT } from './fixtures/fuse-mounted.js'
import { onSmallFs } from './fixtures/small-fs.js'

/**
 * Size of the -shm file and the offset of its first hole (its size when it has none). Looked at
 * from another process: closing a descriptor on the file here would drop the POSIX locks this
 * process's SQLite holds on it.
 */
function shmLayout(store: string): { size: number; firstHole: number } {
  const script = 'import os,sys,json\nfd=os.open(sys.argv[1],os.O_RDONLY)\nprint(json.dumps({"size":os.fstat(fd).st_size,"firstHole":os.lseek(fd,0,os.SEEK_HOLE)}))'
  return JSON.parse(execFileSync('python3', ['-c', script, join(store, 'pagecow.db-shm')], { encoding: 'utf8' })) as { size: number; firstHole: number }
}

t.test('the -shm file is whole, reserved by a writer, and shared across processes', (t) =>
  onSmallFs(t, 'ext4', 8, async (mnt, dir) => {
    writeFileSync(join(dir, 'lower.img'), Buffer.alloc(1 << 20, 0x4c))
    const store = join(mnt, 'store')
    await (await ImageStore.create(store, { lower: join(dir, 'lower.img'), autoFlushMs: 0 })).close()
    t.notOk(existsSync(join(store, 'pagecow.db-shm')), 'a closed store has no -shm file (the last close deletes it)')

    const reader = await ImageStore.open(store, { readOnly: true })
    let shm = shmLayout(store)
    t.equal(shm.size, 32 * 1024, 'a reader opening first makes one region (32 KiB)')
    t.equal(shm.firstHole, shm.size, 'with no hole')
    await reader.close()

    const writer = await ImageStore.open(store, { autoFlushMs: 0 })
    shm = shmLayout(store)
    t.equal(shm.size, 128 * 1024, 'a writer reserves four regions (128 KiB)')
    t.equal(shm.firstHole, shm.size, 'with no hole')
    await writer.write(0, Buffer.from('first'))
    await writer.flush()

    // Another process opens the store while this one writes: it must join the file (a truncation
    // would show as a smaller file, and would lose the index of the writer's log).
    const r = await pagecow(['read', store, '--offset', '0', '--length', '5'])
    t.equal(r.stdout, 'first', `a reader in another process sees the writer's flush${r.stderr ? `: ${r.stderr}` : ''}`)
    t.equal(shmLayout(store).size, 128 * 1024, 'and left the file as it was')
    await writer.write(0, Buffer.from('again'))
    await writer.flush()
    const r2 = await pagecow(['read', store, '--offset', '0', '--length', '5'])
    t.equal(r2.stdout, 'again', 'a later flush is seen too: the shared index still works')

    // Two connections of one process: closing one keeps the other's hold.
    const second = await ImageStore.open(store, { readOnly: true })
    await second.close()
    await writer.write(0, Buffer.from('third'))
    await writer.flush()
    const r3 = await pagecow(['read', store, '--offset', '0', '--length', '5'])
    t.equal(r3.stdout, 'third', 'after another connection of the writer process closed, readers still follow')
    await writer.close()
    t.notOk(existsSync(join(store, 'pagecow.db-shm')), 'the writer, last out, deleted the file')
  }),
)

t.test('an open waits while another process sets the file up, then joins it', (t) =>
  onSmallFs(t, 'tmpfs', 4, async (mnt, dir) => {
    writeFileSync(join(dir, 'lower.img'), Buffer.alloc(1 << 20, 0x4c))
    const store = join(mnt, 'store')
    const s = await ImageStore.create(store, { lower: join(dir, 'lower.img'), autoFlushMs: 0 })
    await s.write(0, Buffer.from('kept'))
    await s.close()
    // Several readers at once, as processes: whoever comes first sets the file up.
    const readers = Array.from({ length: 4 }, () =>
      new Promise<string>((resolve) => {
        const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'lib', 'cli', 'bin.ts'), 'read', store, '--offset', '0', '--length', '4'], { cwd: ROOT, env: childEnv() })
        let out = ''
        child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
        child.once('close', (code) => resolve(`${code}:${out}`))
      }),
    )
    t.same(await Promise.all(readers), ['0:kept', '0:kept', '0:kept', '0:kept'], 'four readers started together all read the store')
  }),
)
