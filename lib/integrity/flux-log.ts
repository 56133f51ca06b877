// STORE/flux: the pages of the upper whose bytes change while the committed map still points at
// them and their committed checksum still describes their old bytes: a committed DATA page
// rewritten in place, or a range of pages made ZERO and punched, before the next commit. Each is
// noted here first; the note reaches the page cache before the page's new bytes do, so a writer
// killed (SIGKILL) in between leaves the note behind, and the next writable open takes the noted
// pages' bytes as they are (a later write, SPEC §3) and records their sums instead of calling them
// corrupt. A reader in another process treats a noted page the same way while the writer runs.
// After a flush the log starts again with what that flush's commit did not cover.
//
// The file is a row of 32-byte slots (file id, first page, end page: u64 little-endian, and 8
// bytes of zeros: no slot straddles a 4 KiB page, so none is torn), written in order; a slot whose
// file id is 0 is free (file ids start at 1). It is kept allocated ahead (64 KiB), so
// that noting a discard on a full disk, which is what gives space back, needs no new block.
// A writer maps those slots into memory (mmap, shared): a note is a few stores into the page
// cache, where a pwrite cost a system call per rewritten page; the file id goes in last, so a
// slot is whole before it counts (a process killed in between leaves a free slot).
import * as fs from '../fs.js'
import { fromSystemError } from '../errors.js'
import { openStoreFile } from '../store/store-file.js'

export const FLUX_FILE = 'flux'
const RECORD_BYTES = 32
/** Bytes of slots kept allocated ahead of the last note. */
const AHEAD_BYTES = 64 * 1024

export interface FluxNote {
  file: number
  /** Pages [start, end). */
  start: number
  end: number
}

export class FluxLog {
  readonly #path: string
  readonly #readOnly: boolean
  #fd: number | undefined
  /** The allocated slots in memory, shared with the file (writers; undefined if mmap failed). */
  #map: { buffer: ArrayBuffer; words: Uint32Array } | undefined
  /** Where the next note goes (this process is the store's one writer). */
  #next = 0
  /** Bytes of the file (slots allocated). */
  #allocated = 0
  /** Notes written since the last sync(). */
  #unsynced = false
  /** The notes written since the log last started again, in order (see mark()). */
  #written: FluxNote[] = []
  /**
   * The file on disk holds no note: this process last wrote it empty (reset) and noted nothing
   * since. Without it, every flush after the first would write a new empty log and rename it over
   * the old one (a file created, allocated and freed per flush) although nothing was noted.
   */
  #emptyOnDisk = false
  /** A reader's copy of the notes, and the log's identity and mtime when it was read. */
  #known: { key: string; notes: FluxNote[] } | undefined

  constructor(storePath: string, readOnly: boolean) {
    this.#path = `${storePath}/${FLUX_FILE}`
    this.#readOnly = readOnly
  }

  /**
   * A writable store, at open: the log's slots allocated ahead, so that the first notes after the
   * disk filled up need no new block. Best effort.
   */
  prepare(): void {
    try {
      this.#open()
    } catch (err) {
      // A log that is not the store's own file (a symlink, a FIFO) refuses the store now; other
      // failures (a full disk) wait for the first note to say what is wrong.
      if ((err as { code?: string }).code === 'EUNSAFE') throw err
    }
  }

  /** Note that pages [start, end) of paged file `file` are about to change under the committed map. */
  note(file: number, start: number, end = start + 1): void {
    const note = { file, start, end }
    try {
      const fd = this.#open()
      if (this.#next + 2 * RECORD_BYTES > this.#allocated) this.#allocate(fd, this.#next + 2 * RECORD_BYTES)
      // The note and a free slot after it: the log ends there, whatever notes of before its last
      // reset (see reset()) still lie further on.
      const words = this.#map?.words
      if (words) {
        const at = this.#next / 4
        words[at + 8] = words[at + 9] = 0 // the next slot's file id: free
        setU64(words, at + 2, start)
        setU64(words, at + 4, end)
        words[at + 6] = words[at + 7] = 0
        words[at + 1] = Math.floor(file / 2 ** 32)
        words[at] = file >>> 0 // last: the slot counts from here on
      } else {
        const bytes = Buffer.alloc(2 * RECORD_BYTES)
        encode(note).copy(bytes, 0)
        fs.writeSync(fd, bytes, 0, bytes.length, this.#next)
      }
      this.#next += RECORD_BYTES
      this.#emptyOnDisk = false
      this.#unsynced = true
      this.#written.push(note)
    } catch (err) {
      throw fromSystemError(err, `noting a page change in ${this.#path}`)
    }
  }

  /**
   * Make the notes durable. A flush calls it before it syncs the uppers: a rewritten page that
   * the sync makes durable before its new sum is committed is then always noted (a power cut in
   * between finds the note). A page the kernel writes back on its own before any flush can still
   * be cut off from its note by a power cut: it is then reported ECORRUPT, never served.
   */
  sync(): void {
    if (!this.#unsynced || this.#fd === undefined) return
    try {
      fs.fdatasyncSync(this.#fd)
      this.#unsynced = false
    } catch (err) {
      throw fromSystemError(err, `syncing ${this.#path}`)
    }
  }

  /** Every note in the log (recovery, readers): the slots up to the first free one. */
  notes(): FluxNote[] {
    let bytes: Buffer
    let fd: number
    try {
      fd = openStoreFile(this.#path, 'r')
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return []
      throw fromSystemError(err, `reading ${this.#path}`)
    }
    try {
      bytes = fs.readFileSync(fd)
    } finally {
      fs.closeSync(fd)
    }
    return decodeAll(bytes)
  }

  /** A reader: whether the writer noted the page (the log is read again when it changed). */
  isNoted(file: number, page: number): boolean {
    let key = ''
    try {
      const st = fs.statSync(this.#path)
      key = `${st.ino}:${st.mtimeMs}:${st.size}`
    } catch {
      key = 'none'
    }
    if (this.#known?.key !== key) this.#known = { key, notes: this.notes() }
    return this.#known.notes.some((n) => n.file === file && page >= n.start && page < n.end)
  }

  /** Where the log is now: a flush marks it when it takes its snapshot (see reset()). */
  mark(): number {
    return this.#written.length
  }

  /**
   * Start the log again after a flush made durable what it took at `mark`: the notes written since
   * then (that commit does not cover them) and `still` (pages written since their sums were
   * taken) remain; the others go. With nothing to keep the log is emptied in place; otherwise a
   * new log is renamed over the old, so no note that must remain is ever missing. Never throws.
   */
  reset(still: FluxNote[], mark = this.#written.length): void {
    if (this.#readOnly) return
    const keep = [...this.#written.slice(mark), ...still]
    if (keep.length === 0 && this.#written.length === 0 && (this.#fd !== undefined || this.#emptyOnDisk || !fs.existsSync(this.#path))) return // empty already
    if (keep.length === 0 && this.#fd !== undefined) {
      // The usual case: nothing to keep. The first slot made free empties the log in place (one
      // small write, atomic for a killed process; no file made, allocated or freed per flush).
      try {
        fs.writeSync(this.#fd, Buffer.alloc(RECORD_BYTES), 0, RECORD_BYTES, 0)
        this.#next = 0
        this.#written = []
        this.#emptyOnDisk = true
        this.#unsynced = true
        return
      } catch {
        // Fall through to a new log.
      }
    }
    const next = `${this.#path}.new`
    try {
      fs.rmSync(next, { force: true })
      const fd = openStoreFile(next, 'rw', { exclusive: true })
      try {
        const bytes = Buffer.alloc(Math.max(AHEAD_BYTES, (keep.length + 1) * RECORD_BYTES))
        keep.forEach((n, i) => encode(n).copy(bytes, i * RECORD_BYTES))
        fs.writeSync(fd, bytes, 0, bytes.length, 0)
      } finally {
        fs.closeSync(fd)
      }
      fs.renameSync(next, this.#path)
    } catch {
      // Housekeeping after a durable commit, never its failure: the old log stays (a full disk,
      // a store directory removed under an open store), and its extra notes only make the next
      // recovery check more pages.
      try {
        fs.rmSync(next, { force: true })
      } catch {
        // (nothing more to do)
      }
      return
    }
    this.close()
    this.#written = keep
    this.#emptyOnDisk = keep.length === 0
  }

  close(): void {
    this.#unmap()
    if (this.#fd !== undefined) fs.closeSync(this.#fd)
    this.#fd = undefined
  }

  /** Map the allocated slots (again, after they grew); without a mapping notes are pwritten. */
  #mapSlots(fd: number): void {
    this.#unmap()
    try {
      const buffer = fs.mapShared(fd, this.#allocated)
      this.#map = { buffer, words: new Uint32Array(buffer, 0, Math.floor(buffer.byteLength / 4)) }
    } catch {
      // (pwrite then: slower, the same notes)
    }
  }

  #unmap(): void {
    if (this.#map) fs.unmapShared(this.#map.buffer)
    this.#map = undefined
  }

  #open(): number {
    if (this.#readOnly) throw new Error('a read-only store notes nothing')
    if (this.#fd === undefined) {
      const fd = openStoreFile(this.#path, 'rw', { create: true })
      const bytes = fs.readFileSync(fd)
      this.#next = decodeAll(bytes).length * RECORD_BYTES
      this.#allocated = bytes.length
      this.#fd = fd
      try {
        this.#allocate(fd, this.#next + AHEAD_BYTES)
      } catch {
        // A full disk: notes go into the slots that exist, and past them fail with ENOSPC.
      }
      if (this.#map === undefined && this.#allocated > 0) this.#mapSlots(fd)
    }
    return this.#fd
  }

  /** Make the file at least `bytes` long (whole slots, zeros), ahead of the notes. */
  #allocate(fd: number, bytes: number): void {
    if (bytes <= this.#allocated) return
    const want = Math.max(bytes, this.#allocated + AHEAD_BYTES)
    fs.writeSync(fd, Buffer.alloc(want - this.#allocated), 0, want - this.#allocated, this.#allocated)
    this.#allocated = want
    if (this.#fd === fd) this.#mapSlots(fd)
  }
}

/** A page number or file id (below 2^53) as a u64 little-endian, into two 32-bit words. */
function setU64(words: Uint32Array, at: number, value: number): void {
  words[at] = value >>> 0
  words[at + 1] = Math.floor(value / 2 ** 32)
}

function encode(n: FluxNote): Buffer {
  const record = Buffer.alloc(RECORD_BYTES)
  record.writeBigUInt64LE(BigInt(n.file), 0)
  record.writeBigUInt64LE(BigInt(n.start), 8)
  record.writeBigUInt64LE(BigInt(n.end), 16)
  return record
}

/** The notes in `bytes`, up to the first free slot (a torn last slot is never acted on). */
function decodeAll(bytes: Buffer): FluxNote[] {
  const out: FluxNote[] = []
  for (let at = 0; at + RECORD_BYTES <= bytes.length; at += RECORD_BYTES) {
    const file = Number(bytes.readBigUInt64LE(at))
    if (file === 0) break
    out.push({ file, start: Number(bytes.readBigUInt64LE(at + 8)), end: Number(bytes.readBigUInt64LE(at + 16)) })
  }
  return out
}
