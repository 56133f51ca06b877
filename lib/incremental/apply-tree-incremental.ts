// `pagecow apply INCREMENTAL TARGETDIR` for a tree incremental: make a directory made by a full
// export of the store at the mark (or by the applies before this one) equal a full export made
// when the incremental was taken.
// - Nothing is applied from a damaged or cut-short incremental: the whole file is read and
//   checked first (never staged: the target is changed in place, so the check costs one read of
//   the incremental and no space).
// - Nothing is applied to the wrong target: it must carry a position, be of the same store and exactly at the mark
//   the incremental starts from (its position attribute on the root; a tree taken while the store
//   changed after its mark holds more than that mark and is refused), and hold the names the
//   incremental takes away, with their types. The incremental that brought a target where it is
//   does nothing when applied again.
// - Renames in any order (chains, swaps, a directory with its subtree) by staging: every object
//   that leaves a name is first moved into a staging directory in the target's root, deepest
//   names first; then every name is given its object, parents first; then data, then metadata.
// - Crash safety: the root records which incremental is being applied and the phase reached
//   (detach, attach, data, meta), after syncing the phase before. Every operation of a phase is
//   idempotent given that its phase is being run (a name already gone is detached, a name already
//   there is attached, data is whole ranges), so running the same apply again finishes it. The
//   position moves to the new mark only after everything is synced.
import { dirname } from 'node:path'
import * as fs from '../fs.js'
import { fromSystemError, PagecowError } from '../errors.js'
import { checkAborted } from '../image/temp-output.js'
import { fsPath } from '../name-bytes.js'
import { splitNs } from '../time-ns.js'
import { typeOfMode } from '../tree/file-type.js'
import type { ApplyResultBase, CheckedApplyOptions } from './apply-incremental.js'
import type { TreeHeader } from './incremental-format.js'
import type { IncrementalReader } from './incremental-reader.js'
import { lockTarget } from './target-lock.js'
import { checkTreePosition, POSITION_XATTR, readPosition, writePosition } from './target-position.js'
import { TREE_PHASES, treePhaseOf, type TreeOperation, type TreePhase } from './tree-operation.js'
import { zeroRange } from './zero-range.js'

const YIELD_RECORDS = 256

/** A tree incremental applied. */
export interface TreeApplyResult extends ApplyResultBase {
  kind: 'tree'
  /** Operations on names and metadata applied (OP records but `file`). */
  operations: number
  /** Files whose data was written. */
  files: number
  /** Owners could not be set (no privilege): the tree differs from the store in owners. */
  ownersSkipped: boolean
}

/** The staging directory of an apply, in the target's root. */
export function stagingName(id: string): string {
  return `.pagecow-apply-${id}`
}

export async function applyTreeIncremental(reader: IncrementalReader, h: TreeHeader, incremental: string, target: string, opts: CheckedApplyOptions): Promise<TreeApplyResult> {
  // Phase 1: the whole incremental is read and checked before the target is opened.
  let records = 0
  let dataBytes = 0
  let zeroBytes = 0
  let operations = 0
  let files = 0
  for (const r of reader.records()) {
    records++
    if (r.kind === 'data') dataBytes += r.length
    else if (r.kind === 'zero') zeroBytes += r.length
    else if (r.op.op === 'file') files++
    else operations++
    if (records % YIELD_RECORDS === 0) {
      opts.onProgress?.({ phase: 'check', done: records, total: 0 })
      await new Promise((resolve) => setImmediate(resolve))
      checkAborted(opts.signal, target)
    }
  }
  checkAborted(opts.signal, target)

  const root = openRoot(target, incremental)
  try {
    lockTarget(root, target)
    const position = readPosition(root, target)
    if (!position) {
      // Without it, nothing says the tree is this store's at that mark, and the names an
      // incremental takes away are only a sample: too little to move names around on.
      throw new PagecowError(
        'ECHAIN',
        `${target} carries no ${POSITION_XATTR} attribute: it was not made by pagecow export (or a copy dropped its xattrs, or its file system keeps none), so nothing says it is this store's tree at the mark ${JSON.stringify(h.since.name)}; ` +
          'apply a tree incremental onto a full export (copies: cp -a, rsync -aX); nothing was applied',
      )
    }
    const state = checkTreePosition(position, reader.id, h.store, h.since, target, incremental)
    const resumed = state === 'resume'
    const result = { id: reader.id, kind: 'tree' as const, since: h.since, reached: h.reached, records, dataBytes, zeroBytes, operations, files, positionChecked: true, resumed }
    if (state === 'applied') return { ...result, records: 0, dataBytes: 0, zeroBytes: 0, operations: 0, files: 0, ownersSkipped: false, positionRecorded: true }
    if (!resumed) checkExpected(target, incremental, h)
    checkAborted(opts.signal, target)

    // Phase 2: say what is being applied, then apply phase by phase, then say where the target stands.
    const base = position?.at ?? null
    const start = resumed ? TREE_PHASES.indexOf(position!.applying!.phase ?? 'detach') : 0
    const record = (phase: TreePhase) => {
      const recorded = writePosition(root, { store: h.store, at: base, applying: { id: reader.id, since: h.since, reached: h.reached, phase } })
      if (recorded) fs.fsyncSync(root)
    }
    record(TREE_PHASES[start]!)
    const applier = new TreeApplier(target, `${target}/${stagingName(reader.id)}`)
    let phase = start
    const advance = (to: number) => {
      for (; phase < to; phase++) {
        applier.endPhase(TREE_PHASES[phase]!)
        record(TREE_PHASES[phase + 1]!)
      }
    }
    let done = 0
    let skipping = false
    for (const r of reader.records()) {
      if (r.kind === 'op') {
        const at = TREE_PHASES.indexOf(treePhaseOf(r.op))
        advance(at)
        skipping = at < start // done and synced by the apply cut short
        if (!skipping) applier.apply(r.op)
      } else if (!skipping) {
        if (r.kind === 'data') applier.write(r.data, r.start)
        else applier.zero(r.start, r.length)
      }
      if (++done % YIELD_RECORDS === 0) {
        opts.onProgress?.({ phase: 'apply', done, total: records })
        await new Promise((resolve) => setImmediate(resolve))
        if (opts.signal?.aborted) {
          applier.close()
          throw new PagecowError('EINTR', `apply of ${incremental} onto ${target} interrupted; the target is part way: apply the same incremental again to finish (no other is accepted until then)`)
        }
      }
    }
    advance(TREE_PHASES.length - 1)
    applier.endPhase('meta')
    fs.fsyncSync(root)
    const positionRecorded = writePosition(root, { store: h.store, at: h.reached, ...(h.atReached ? {} : { beyond: true as const }), applied: reader.id })
    if (positionRecorded) fs.fsyncSync(root)
    opts.onProgress?.({ phase: 'apply', done: records, total: records })
    return { ...result, ownersSkipped: applier.ownersSkipped, positionRecorded }
  } catch (err) {
    throw fromSystemError(err, `applying ${incremental} onto ${target}`)
  } finally {
    fs.closeSync(root)
  }
}

function openRoot(target: string, incremental: string): number {
  let fd: number
  try {
    fd = fs.openSync(target, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOTDIR' || code === 'ELOOP') {
      throw new PagecowError('EINVAL', `${target} is not a directory; ${incremental} is a tree incremental: apply it onto the directory a full export of the tree store made`, { cause: err })
    }
    throw fromSystemError(err, `opening ${target}`)
  }
  return fd
}

/** The names the incremental takes away must be there, with their types (a sample; sockets are never exported). */
function checkExpected(target: string, incremental: string, h: TreeHeader): void {
  for (const [path, type] of h.expect.paths) {
    if (type === 'socket') continue
    let found: string | undefined
    try {
      found = typeOfMode(fs.lstatSync(fsPath(`${target}${path}`)).mode)
    } catch {
      found = undefined
    }
    if (found !== type) {
      throw new PagecowError(
        'ECHAIN',
        `${target} does not hold what ${incremental} expects at the mark ${JSON.stringify(h.since.name)} (${path}: ${found ?? 'missing'}, expected ${type}): ` +
          'it is not an export of this store at that mark (an incremental missing before this one, one applied out of order, or a full export made before the mark); nothing was applied',
      )
    }
  }
}

/** The operations, one at a time, on the target directory; remembers what to sync at the end of a phase. */
class TreeApplier {
  readonly #root: string
  readonly #staging: string
  /** Directories whose entries changed in this phase (keyed by their bytes), to sync at its end. */
  readonly #dirs = new Map<string, string | Buffer>()
  #file: { fd: number; path: string } | undefined
  ownersSkipped = false

  constructor(root: string, staging: string) {
    this.#root = root
    this.#staging = staging
  }

  apply(op: TreeOperation): void {
    this.#closeFile()
    switch (op.op) {
      case 'detach':
        return this.#detach(op.path, op.keep)
      case 'attach':
        return this.#attach(op.path, op.key)
      case 'create':
        return this.#create(op)
      case 'link':
        return this.#link(op.path, op.to)
      case 'file':
        return this.#openFile(op.path, op.size)
      case 'meta':
        return this.#meta(op)
    }
  }

  write(data: Buffer, start: number): void {
    const fd = this.#file!.fd
    for (let w = 0; w < data.length; ) w += fs.writeSync(fd, data, w, data.length - w, start + w)
  }

  zero(start: number, length: number): void {
    zeroRange(this.#file!.fd, start, length)
  }

  /** Make the phase's work durable (before the position says it is done); the staging directory goes after attach. */
  endPhase(phase: TreePhase): void {
    this.#closeFile()
    if (phase === 'attach') {
      try {
        fs.rmdirSync(this.#staging)
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        if (code !== 'ENOENT') throw fromSystemError(err, `removing the staging directory ${this.#staging} (it should be empty once every name is given its object)`)
      }
      this.#dir(this.#root)
    }
    for (const dir of this.#dirs.values()) {
      try {
        fs.syncDirectory(dir)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      }
    }
    this.#dirs.clear()
  }

  close(): void {
    this.#closeFile()
  }

  /** The file-system path of tree path `path`; its directories must be directories (never symlinks: nothing is written outside the target). */
  #at(path: string, what: string): string | Buffer | undefined {
    if (path === '/') return this.#root
    const parts = path.slice(1).split('/')
    let dir = this.#root
    for (const part of parts.slice(0, -1)) {
      dir = `${dir}/${part}`
      const st = lstatOrUndefined(dir)
      if (st === undefined) return undefined
      if (!st.isDirectory()) throw new PagecowError('ECHAIN', `${this.#root}: ${dir.slice(this.#root.length)} is not a directory, yet ${what} ${path} goes through it: the target is not what this incremental was made for`)
    }
    return fsPath(`${this.#root}${path}`)
  }

  #need(path: string, what: string): string | Buffer {
    const at = this.#at(path, what)
    if (at === undefined) throw new PagecowError('ECHAIN', `${this.#root}: the directory of ${path} is missing (${what}): the target is not what this incremental was made for`)
    return at
  }

  #touched(at: string | Buffer): void {
    this.#dir(typeof at === 'string' ? dirname(at) : at.subarray(0, Math.max(1, at.lastIndexOf(0x2f))))
  }

  #dir(dir: string | Buffer): void {
    this.#dirs.set(Buffer.from(dir).toString('latin1'), dir)
  }

  #detach(path: string, keep: string | null): void {
    const at = this.#at(path, 'detaching')
    const st = at === undefined ? undefined : lstatOrUndefined(at)
    if (at === undefined || st === undefined) return // done before a cut-short apply stopped
    this.#touched(at)
    if (keep === null) {
      if (st.isDirectory()) fs.rmSync(at, { recursive: true, force: true })
      else fs.rmSync(at, { force: true })
      return
    }
    try {
      fs.mkdirSync(this.#staging, { mode: 0o700 })
      this.#dir(this.#root)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    const staged = `${this.#staging}/${keep}`
    if (lstatOrUndefined(staged) === undefined) fs.renameSync(at, staged)
    else fs.rmSync(at) // another name of an object already staged
    this.#dir(this.#staging)
  }

  #attach(path: string, key: string): void {
    const at = this.#need(path, 'attaching')
    if (lstatOrUndefined(at) !== undefined) return
    const staged = `${this.#staging}/${key}`
    if (lstatOrUndefined(staged) === undefined) throw new PagecowError('ECHAIN', `${this.#root}: the object for ${path} was not staged (the target is not what this incremental was made for)`)
    fs.renameSync(staged, at)
    this.#dir(this.#staging)
    this.#touched(at)
  }

  #create(op: Extract<TreeOperation, { op: 'create' }>): void {
    const at = this.#need(op.path, 'creating')
    if (lstatOrUndefined(at) !== undefined) return
    if (op.type === 'file') fs.closeSync(fs.openSync(at, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600))
    else if (op.type === 'directory') fs.mkdirSync(at, { mode: 0o700 })
    else if (op.type === 'symlink') fs.symlinkSync(fsPath(op.target ?? ''), at)
    else fs.mknod(at, op.type === 'fifo' ? 'fifo' : op.type === 'char-device' ? 'char' : 'block', 0o600, op.rdev ?? 0)
    this.#touched(at)
  }

  #link(path: string, to: string): void {
    const at = this.#need(path, 'linking')
    if (lstatOrUndefined(at) !== undefined) return
    fs.linkSync(this.#need(to, 'linking to'), at)
    this.#touched(at)
  }

  #openFile(path: string, size: number): void {
    const at = this.#need(path, 'writing')
    const fd = fs.openSync(at, fs.constants.O_WRONLY | fs.constants.O_NOFOLLOW)
    this.#file = { fd, path }
    if (!fs.fstatSync(fd).isFile()) throw new PagecowError('ECHAIN', `${this.#root}: ${path} is not a regular file: the target is not what this incremental was made for`)
    fs.ftruncateSync(fd, size)
  }

  #closeFile(): void {
    const file = this.#file
    if (!file) return
    this.#file = undefined
    try {
      fs.fsyncSync(file.fd)
    } finally {
      fs.closeSync(file.fd)
    }
  }

  #meta(op: Extract<TreeOperation, { op: 'meta' }>): void {
    const at = this.#need(op.path, 'setting the metadata of')
    if (op.xattrs !== null) {
      const fd = fs.openSync(at, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW)
      try {
        const wanted = new Map(op.xattrs.map(([name, value]) => [name, Buffer.from(value, 'base64')]))
        const isRoot = op.path === '/'
        for (const name of fs.listXattrs(fd)) if (!wanted.has(name) && !(isRoot && name === POSITION_XATTR)) fs.removeXattr(fd, name)
        for (const [name, value] of wanted) {
          if (isRoot && name === POSITION_XATTR) continue
          if (!fs.getXattr(fd, name)?.equals(value)) fs.setXattr(fd, name, value)
        }
        if (op.type !== 'fifo') fs.fsyncSync(fd)
      } finally {
        fs.closeSync(fd)
      }
    }
    if (!this.ownersSkipped) {
      try {
        fs.lchownSync(at, op.uid, op.gid)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EPERM') throw err
        this.ownersSkipped = true
      }
    }
    if (op.type !== 'symlink') fs.chmodSync(at, op.mode)
    fs.lutimensSync(at, splitNs(BigInt(op.atimeNs)), splitNs(BigInt(op.mtimeNs)))
    this.#touched(at)
  }
}

function lstatOrUndefined(path: string | Buffer): ReturnType<typeof fs.lstatSync> | undefined {
  try {
    return fs.lstatSync(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}
