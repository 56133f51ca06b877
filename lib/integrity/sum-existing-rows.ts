// The upgrade to schema 40: every row made before row checksums gets its sum, and every paged
// file its page totals, computed from the rows as they are at the upgrade (what the store served
// until then). From then on a row that does not match its sum is ECORRUPT.
import type Database from 'better-sqlite3'
import { rowSum } from './row-sums.js'

type Row = Record<string, unknown>

const INODE_COLUMNS = ['ino', 'type', 'origin', 'nlink', 'mode', 'uid', 'gid', 'rdev', 'atime_sec', 'atime_nsec', 'mtime_sec', 'mtime_nsec', 'ctime_sec', 'ctime_nsec', 'target', 'file', 'lower_fp', 'opaque']

export function sumExistingRows(db: Database.Database): void {
  const all = (sql: string) => db.prepare(sql).all() as Row[]
  const n = (v: unknown) => v as number
  const b = (v: unknown) => v as Buffer
  for (const r of all('SELECT key, value FROM meta')) {
    db.prepare('UPDATE meta SET sum = ? WHERE key = ?').run(rowSum.meta(r.key as string, r.value as string), r.key)
  }
  for (const r of all('SELECT file, chunk, data, zero, data_count, zero_count FROM page_chunks')) {
    db.prepare('UPDATE page_chunks SET sum = ? WHERE file = ? AND chunk = ?').run(rowSum.pageChunks(n(r.file), n(r.chunk), b(r.data), b(r.zero), n(r.data_count), n(r.zero_count)), r.file, r.chunk)
  }
  for (const r of all(`SELECT f.id, f.size, f.lower_cut, f.bytes_written, f.upper_written,
      coalesce((SELECT sum(data_count) FROM page_chunks c WHERE c.file = f.id), 0) AS data_pages,
      coalesce((SELECT sum(zero_count) FROM page_chunks c WHERE c.file = f.id), 0) AS zero_pages FROM files f`)) {
    const sum = rowSum.files(n(r.id), n(r.size), n(r.lower_cut), n(r.bytes_written), n(r.upper_written), n(r.data_pages), n(r.zero_pages))
    db.prepare('UPDATE files SET data_pages = ?, zero_pages = ?, sum = ? WHERE id = ?').run(r.data_pages, r.zero_pages, sum, r.id)
  }
  for (const r of all(`SELECT ${INODE_COLUMNS.join(', ')} FROM inodes`)) {
    db.prepare('UPDATE inodes SET sum = ? WHERE ino = ?').run(rowSum.inodes(INODE_COLUMNS.map((c) => r[c] as number | string | Buffer | null)), r.ino)
  }
  for (const r of all('SELECT parent, name, ino FROM dirents')) {
    db.prepare('UPDATE dirents SET sum = ? WHERE parent = ? AND name = ?').run(rowSum.dirents(n(r.parent), b(r.name), r.ino as number | null), r.parent, r.name)
  }
  for (const r of all('SELECT ino, name, value FROM xattrs')) {
    db.prepare('UPDATE xattrs SET sum = ? WHERE ino = ? AND name = ?').run(rowSum.xattrs(n(r.ino), r.name as string, r.value as Buffer | null), r.ino, r.name)
  }
  for (const r of all('SELECT name, value FROM counters')) {
    db.prepare('UPDATE counters SET sum = ? WHERE name = ?').run(rowSum.counters(r.name as string, n(r.value)), r.name)
  }
  for (const r of all('SELECT file FROM purge')) db.prepare('UPDATE purge SET sum = ? WHERE file = ?').run(rowSum.purge(n(r.file)), r.file)
}
