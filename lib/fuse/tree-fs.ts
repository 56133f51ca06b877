// A tree store as a FUSE file system: node ids turn into store paths through the inode table,
// and every operation is the store's own, so the mount and the CLI see one namespace.
import { constants } from '../fs.js'
import { nameToBytes } from '../name-bytes.js'
import { PagecowError } from '../errors.js'
import type { TreeFileHandle } from '../tree/file-handle.js'
import { typeOfMode, type FileType } from '../tree/file-type.js'
import type { TreeStat, DirEntry } from '../tree/tree-stat.js'
import type { TreeStore } from '../tree/tree-store.js'
import { fallocateZeroRange } from './fallocate-range.js'
import { InodeTable } from './inode-table.js'
import type { AttrChanges, Caller, FuseOperations, Notifier, Opened, Statfs } from './operations.js'
import { ATTR_VALID_MS, ENTRY_VALID_MS } from './operations.js'
import { DT, FUSE_ROOT_ID, RENAME_EXCHANGE, RENAME_NOREPLACE, type Attr, type DirentPlusWriter, type DirentWriter, type EntryOut } from './protocol.js'

const SEEK_DATA = 3
const SEEK_HOLE = 4
const XATTR_CREATE = 1
const XATTR_REPLACE = 2
const S_ISUID = 0o4000
const S_ISGID = 0o2000
const CAPABILITY_XATTR = 'security.capability'
/** d_ino of a plain READDIR entry, which is not looked up (libfuse's FUSE_UNKNOWN_INO): stat tells the truth. */
const UNKNOWN_INO = 0xffffffff
/** The open(2) bits the store acts on; the kernel already handled the rest. */
const OPEN_BITS = 3 | constants.O_APPEND | constants.O_TRUNC | constants.O_CREAT | constants.O_EXCL

const DIRENT_TYPE: Record<FileType, number> = {
  file: DT.REG,
  directory: DT.DIR,
  symlink: DT.LNK,
  fifo: DT.FIFO,
  socket: DT.SOCK,
  'char-device': DT.CHR,
  'block-device': DT.BLK,
}

interface OpenFile {
  nodeid: number
  handle: TreeFileHandle
  /** Whether a write went through (the first drops security.capability, as the VFS would). */
  written: boolean
}

interface OpenDir {
  nodeid: number
  ino: number
  /** What ".." shows: the directory's parent, as stat(dir/..) would show it (the root's own for the root). */
  parentIno: number
  entries: readonly DirEntry[]
}

export class TreeFs implements FuseOperations {
  readonly #store: TreeStore
  readonly #nodes: InodeTable
  readonly #files = new Map<number, OpenFile>()
  readonly #dirs = new Map<number, OpenDir>()
  readonly #maxNodes: number
  #notifier: Notifier | undefined
  #nextFh = 1

  private constructor(store: TreeStore, rootIno: number, maxNodes: number) {
    this.#store = store
    this.#nodes = new InodeTable(rootIno)
    this.#maxNodes = maxNodes
  }

  /** `maxNodes`: past this many inodes held by the kernel, ask it to drop the least recently looked up. */
  static async over(store: TreeStore, maxNodes: number): Promise<TreeFs> {
    return new TreeFs(store, (await store.stat('/')).ino, maxNodes)
  }

  bindNotifier(notifier: Notifier): void {
    this.#notifier = notifier
  }

  get stable(): boolean {
    return !this.#store.readOnly
  }

  get readOnly(): boolean {
    return this.#store.readOnly
  }

  /** Node ids the kernel holds (what the mount costs in memory grows with this, not the tree). */
  get nodes(): number {
    return this.#nodes.size
  }

  async lookup(parent: number, name: string): Promise<EntryOut | null> {
    const stat = await this.#store.statIfExists(this.#nodes.childPath(parent, name))
    return stat ? this.#entry(parent, name, stat) : null
  }

  forget(nodeid: number, nlookup: number): void {
    this.#nodes.forget(nodeid, nlookup)
  }

  async getattr(nodeid: number, fh: number | undefined): Promise<Attr> {
    const file = fh === undefined ? undefined : this.#files.get(fh)
    if (file) return attrOf(await file.handle.stat())
    const path = this.#nodes.pathIfNamed(nodeid)
    if (path !== undefined) return attrOf(await this.#store.stat(path))
    // No name left (unlinked), but open: fstat comes without a handle.
    for (const f of this.#files.values()) if (f.nodeid === nodeid) return attrOf(await f.handle.stat())
    throw new PagecowError('ENOENT', `node ${nodeid} has no name left and no open handle`)
  }

  async setattr(nodeid: number, changes: AttrChanges, fh: number | undefined): Promise<Attr> {
    const file = fh === undefined ? undefined : this.#files.get(fh)
    if (changes.size !== undefined) {
      if (file) await file.handle.truncate(changes.size)
      else await this.#store.truncate(this.#nodes.path(nodeid), changes.size)
    }
    const chown = changes.uid !== undefined || changes.gid !== undefined
    const hasMeta = changes.mode !== undefined || chown || changes.atimeNs !== undefined || changes.mtimeNs !== undefined || changes.killSuidgid
    if (!hasMeta && file) return attrOf(await file.handle.stat())
    const path = this.#nodes.path(nodeid)
    if (changes.mode !== undefined) await this.#store.chmod(path, changes.mode)
    if (chown) {
      await this.#store.chown(path, changes.uid ?? -1, changes.gid ?? -1)
      await this.#killPrivileges(path, true, true) // chown clears suid/sgid and capabilities, as in the VFS
    } else if (changes.killSuidgid || changes.size !== undefined) {
      await this.#killPrivileges(path, changes.killSuidgid === true, changes.size !== undefined)
    }
    if (changes.atimeNs !== undefined || changes.mtimeNs !== undefined) {
      await this.#store.utimens(path, { atimeNs: changes.atimeNs, mtimeNs: changes.mtimeNs })
    }
    return attrOf(await this.#store.stat(path))
  }

  readlink(nodeid: number): Promise<string> {
    return this.#store.readlink(this.#nodes.path(nodeid))
  }

  async symlink(parent: number, name: string, target: string, caller: Caller): Promise<EntryOut> {
    const stat = await this.#store.symlink(target, this.#nodes.childPath(parent, name), { uid: caller.uid, gid: caller.gid })
    return this.#entry(parent, name, stat)
  }

  async mknod(parent: number, name: string, mode: number, rdev: number, caller: Caller): Promise<EntryOut> {
    const path = this.#nodes.childPath(parent, name)
    const type = typeOfMode(mode)
    const owner = { mode: mode & 0o7777, uid: caller.uid, gid: caller.gid }
    let stat: TreeStat
    if (type === 'file') stat = await this.#store.create(path, owner)
    else if (type === 'fifo' || type === 'socket' || type === 'char-device' || type === 'block-device') stat = await this.#store.mknod(path, { ...owner, type, rdev })
    else throw new PagecowError('EINVAL', `mknod: mode ${mode.toString(8)} is not a file, FIFO, socket or device`)
    return this.#entry(parent, name, stat)
  }

  async mkdir(parent: number, name: string, mode: number, caller: Caller): Promise<EntryOut> {
    const stat = await this.#store.mkdir(this.#nodes.childPath(parent, name), { mode: mode & 0o7777, uid: caller.uid, gid: caller.gid })
    return this.#entry(parent, name, stat)
  }

  async unlink(parent: number, name: string): Promise<void> {
    await this.#store.unlink(this.#nodes.childPath(parent, name))
    this.#nodes.removed(parent, name)
  }

  async rmdir(parent: number, name: string): Promise<void> {
    await this.#store.rmdir(this.#nodes.childPath(parent, name))
    this.#nodes.removed(parent, name)
  }

  async rename(parent: number, name: string, newParent: number, newName: string, flags: number): Promise<void> {
    if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) throw new PagecowError('EINVAL', `rename: flags ${flags} are not supported (RENAME_WHITEOUT is the store's own business)`)
    const exchange = (flags & RENAME_EXCHANGE) !== 0
    await this.#store.rename(this.#nodes.childPath(parent, name), this.#nodes.childPath(newParent, newName), {
      noReplace: (flags & RENAME_NOREPLACE) !== 0,
      exchange,
    })
    this.#nodes.renamed({ parent, name }, { parent: newParent, name: newName }, exchange)
  }

  async link(nodeid: number, newParent: number, newName: string): Promise<EntryOut> {
    const stat = await this.#store.link(this.#nodes.path(nodeid), this.#nodes.childPath(newParent, newName))
    return this.#entry(newParent, newName, stat)
  }

  async open(nodeid: number, flags: number, killSuidgid: boolean): Promise<Opened> {
    const path = this.#nodes.path(nodeid)
    const handle = await this.#store.open(path, flags & OPEN_BITS)
    try {
      if (killSuidgid) await this.#killPrivileges(path, true, true)
    } catch (err) {
      await handle.close() // the kernel gets an error, not a handle: nothing would close it
      throw err
    }
    return this.#opened(nodeid, handle)
  }

  async create(parent: number, name: string, flags: number, mode: number, caller: Caller): Promise<{ entry: EntryOut; opened: Opened }> {
    const path = this.#nodes.childPath(parent, name)
    const handle = await this.#store.open(path, (flags & OPEN_BITS) | constants.O_CREAT, { mode: mode & 0o7777, uid: caller.uid, gid: caller.gid })
    let stat: TreeStat
    try {
      stat = await handle.stat()
    } catch (err) {
      await handle.close()
      throw err
    }
    const entry = this.#entry(parent, name, stat)
    return { entry, opened: this.#opened(entry.nodeid, handle) }
  }

  async read(fh: number, offset: number, size: number, scratch: Buffer): Promise<Uint8Array> {
    const into = scratch.subarray(0, size)
    return into.subarray(0, await this.#file(fh).handle.readInto(into, offset))
  }

  async write(fh: number, offset: number, data: Uint8Array, killSuidgid: boolean, cached: boolean): Promise<number> {
    const file = this.#file(fh)
    if ((!file.written && !cached) || killSuidgid) {
      file.written = true
      // The handle's own path may be stale after a rename; the node's is current.
      const path = this.#nodes.pathIfNamed(file.nodeid)
      if (path !== undefined) await this.#killPrivileges(path, killSuidgid, true)
    }
    return file.handle.write(offset, data)
  }

  writeWaits(fh: number): boolean {
    return this.#files.get(fh)?.handle.frozen ?? false
  }

  async fallocate(fh: number, offset: number, length: number, mode: number): Promise<void> {
    const { handle } = this.#file(fh)
    const range = fallocateZeroRange(mode, offset, length, (await handle.stat()).size)
    // zero(): whole pages become ZERO and store nothing; partial pages are written zeros.
    if (range) await handle.zero(range.offset, range.length)
  }

  async release(fh: number): Promise<void> {
    const file = this.#files.get(fh)
    this.#files.delete(fh)
    await file?.handle.close()
  }

  fsync(fh: number): Promise<void> {
    return this.#file(fh).handle.fsync()
  }

  async lseek(nodeid: number, fh: number, offset: number, whence: number): Promise<number | null> {
    if (whence !== SEEK_DATA && whence !== SEEK_HOLE) throw new PagecowError('EINVAL', `lseek: whence ${whence} is the kernel's to handle`)
    const { size } = await this.#file(fh).handle.stat()
    if (offset >= size) return null
    for (const e of this.#store.extents(this.#nodes.path(nodeid), offset)) {
      const isData = e.state === 'data' || e.state === 'lower'
      if (isData === (whence === SEEK_DATA)) return Math.max(offset, e.start)
    }
    return whence === SEEK_DATA ? null : size // the end of the file is a hole
  }

  async statfs(): Promise<Statfs> {
    const s = await this.#store.statfs()
    return { blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, bsize: s.bsize, namelen: s.namemax, frsize: s.bsize }
  }

  async setxattr(nodeid: number, name: string, value: Uint8Array, flags: number): Promise<void> {
    refuseAcl(name, 'setxattr')
    return this.#store.setxattr(this.#nodes.path(nodeid), name, value, {
      create: (flags & XATTR_CREATE) !== 0,
      replace: (flags & XATTR_REPLACE) !== 0,
    })
  }

  getxattr(nodeid: number, name: string): Promise<Buffer> {
    return this.#store.getxattr(this.#nodes.path(nodeid), name)
  }

  listxattr(nodeid: number): Promise<string[]> {
    return this.#store.listxattr(this.#nodes.path(nodeid))
  }

  async removexattr(nodeid: number, name: string): Promise<void> {
    refuseAcl(name, 'removexattr')
    return this.#store.removexattr(this.#nodes.path(nodeid), name)
  }

  async opendir(nodeid: number): Promise<number> {
    const path = this.#nodes.path(nodeid)
    const ino = this.#nodes.node(nodeid).ino
    const parentIno = this.#nodes.parent(nodeid).ino
    const fh = this.#nextFh++
    // One listing per open: offsets stay valid however the directory changes meanwhile.
    this.#dirs.set(fh, { nodeid, ino, parentIno, entries: await this.#store.readdir(path) })
    return fh
  }

  async readdir(fh: number, offset: number, out: DirentWriter): Promise<void> {
    const dir = this.#dir(fh, 'readdir')
    if (!addDots(dir, offset, (ino, next, name) => out.add(ino, next, DT.DIR, name))) return
    for (let i = Math.max(offset, 2); i < dir.entries.length + 2; i++) {
      if (!addEntry(out, dir.entries[i - 2]!, i + 1)) return
    }
  }

  async readdirplus(fh: number, offset: number, out: DirentPlusWriter): Promise<void> {
    const dir = this.#dir(fh, 'readdirplus')
    // The kernel links no entry for "." and "..": node id 0, the attributes unused but the ino.
    const dot = (ino: number) => ({ nodeid: 0, generation: 0, entryValidMs: 0, attrValidMs: 0, attr: { ...NO_ATTR, ino } })
    if (!addDots(dir, offset, (ino, next, name) => out.add(dot(ino), next, DT.DIR, name))) return
    // The names that fit, looked up together (the directory resolved once), before any is
    // added: the kernel counts a lookup for each entry sent, so none may be looked up in vain.
    // An empty reply ends the listing, so a batch whose names were all removed since the
    // snapshot does not end the reply: the next batch follows.
    let from = Math.max(offset, 2) - 2
    let added = out.count
    while (from < dir.entries.length) {
      const candidates = dir.entries.slice(from, from + 512)
      const names = candidates.map((e) => nameToBytes(e.name))
      const count = out.fitting(names)
      if (count === 0) return
      const stats = await this.#store.statChildren(this.#nodes.path(dir.nodeid), candidates.slice(0, count).map((e) => e.name))
      for (let k = 0; k < count; k++) {
        const stat = stats[k]
        if (!stat) continue // removed since the listing was taken
        out.add(this.#entry(dir.nodeid, candidates[k]!.name, stat), from + k + 3, DIRENT_TYPE[stat.type], names[k]!)
      }
      from += count
      if (out.count > added) return
      added = out.count
    }
  }

  async releasedir(fh: number): Promise<void> {
    this.#dirs.delete(fh)
  }

  sync(): Promise<void> {
    return this.#store.flush()
  }

  /** Close what the kernel left open (a forced unmount sends no RELEASE). */
  async closeAll(): Promise<void> {
    for (const file of this.#files.values()) await file.handle.close()
    this.#files.clear()
    this.#dirs.clear()
  }

  #entry(parent: number, name: string, stat: TreeStat): EntryOut {
    const node = this.#nodes.remember(parent, name, stat.ino)
    if (this.#nodes.active > this.#maxNodes) this.#shed()
    return { nodeid: node.nodeid, generation: 0, entryValidMs: ENTRY_VALID_MS, attrValidMs: ATTR_VALID_MS, attr: attrOf(stat) }
  }

  /**
   * Keep the inode table (our memory) bounded whatever the size of the tree: the kernel would
   * keep every inode a walk looked up until memory runs short, and each costs us a node. Ask it
   * to drop the least recently looked-up entries down to 90% of the cap; their FORGETs shrink the
   * table. Open files and directories are kept: the kernel could not let them go anyway.
   */
  #shed(): void {
    const notifier = this.#notifier
    if (!notifier) return
    const busy = new Set<number>()
    for (const f of this.#files.values()) busy.add(f.nodeid)
    for (const d of this.#dirs.values()) busy.add(d.nodeid)
    const excess = this.#nodes.active - Math.floor(this.#maxNodes * 0.9)
    // One notification per directory where we can: dropping a directory's entry drops the
    // entries under it, and a walk leaves whole directories cold (a thousand FORGETs for one
    // message, where one message per name could not keep up with the walk).
    const parents = new Set<number>()
    for (const node of this.#nodes.shed(excess, (n) => busy.has(n.nodeid))) {
      for (const n of node.names) {
        const parent = this.#nodes.find(n.parent)
        // A parent already being shed whose FORGET has not come (a shell's current directory)
        // may never go: its children get their own messages.
        if (parent && parent.nodeid !== FUSE_ROOT_ID && !busy.has(parent.nodeid) && !parent.shedding && parent.names.length > 0) parents.add(parent.nodeid)
        else notifier.invalidateEntry(n.parent, n.name)
      }
    }
    for (const nodeid of parents) {
      const parent = this.#nodes.find(nodeid)!
      if (parent.shedding) continue // its own directory's message is on the way
      this.#nodes.markShedding(parent)
      for (const n of parent.names) notifier.invalidateEntry(n.parent, n.name)
    }
  }

  #opened(nodeid: number, handle: TreeFileHandle): Opened {
    const fh = this.#nextFh++
    this.#files.set(fh, { nodeid, handle, written: false })
    // Every change reaches the store through this mount, and the kernel keeps one page cache per
    // inode (hard links are one node), so cached pages stay right across opens. Not for a
    // read-only store: its writer may be another process.
    return { fh, keepCache: this.stable }
  }

  /**
   * What the VFS does on write, truncate and chown, and the kernel leaves to us under
   * HANDLE_KILLPRIV_V2: clear suid (and sgid on a group-executable file), drop file capabilities.
   */
  async #killPrivileges(path: string, suidgid: boolean, capabilities: boolean): Promise<void> {
    if (suidgid) {
      const { mode, type } = await this.#store.stat(path)
      const bits = S_ISUID | (mode & 0o010 ? S_ISGID : 0)
      // Every type but directories, as the VFS does (fifos, sockets and device nodes included).
      if (type !== 'directory' && type !== 'symlink' && mode & bits) await this.#store.chmod(path, mode & 0o7777 & ~bits)
    }
    if (capabilities && (await this.#store.listxattr(path)).includes(CAPABILITY_XATTR)) {
      await this.#store.removexattr(path, CAPABILITY_XATTR)
    }
  }

  #dir(fh: number, what: string): OpenDir {
    const dir = this.#dirs.get(fh)
    if (!dir) throw new PagecowError('EBADF', `${what}: no open directory ${fh}`)
    return dir
  }

  #file(fh: number): OpenFile {
    const file = this.#files.get(fh)
    if (!file) throw new PagecowError('EBADF', `no open file ${fh}`)
    return file
  }
}

/** The POSIX ACL attributes: without FUSE_POSIX_ACL the kernel hands them to us as plain xattrs. */
const ACL_XATTRS = new Set(['system.posix_acl_access', 'system.posix_acl_default'])

/**
 * The mount does not do POSIX ACLs (the kernel checks modes only), so setting one is ENOTSUP, as
 * on a file system mounted without ACL support. Storing it as a plain xattr would leave the mode
 * as it was: `cp -a` and `tar -p` set the final mode through a minimal ACL and fall back to
 * chmod only on ENOTSUP.
 */
function refuseAcl(name: string, what: string): void {
  if (ACL_XATTRS.has(name)) throw new PagecowError('ENOTSUP', `${what}: ${name}: this mount does not support POSIX ACLs`)
}

const NO_ATTR: Attr = { ino: 0, size: 0, blocks: 0, atimeNs: 0n, mtimeNs: 0n, ctimeNs: 0n, mode: 0, nlink: 0, uid: 0, gid: 0, rdev: 0, blksize: 0 }
const DOT = Buffer.from('.')
const DOTDOT = Buffer.from('..')

/**
 * "." and ".." from `offset` on (they are offsets 0 and 1; entry i of the listing is offset
 * i + 2), each through `add`. False once one does not fit.
 */
function addDots(dir: OpenDir, offset: number, add: (ino: number, nextOffset: number, name: Buffer) => boolean): boolean {
  for (let i = offset; i < 2; i++) {
    if (!add(i === 0 ? dir.ino : dir.parentIno, i + 1, i === 0 ? DOT : DOTDOT)) return false
  }
  return true
}

function addEntry(out: DirentWriter, entry: DirEntry, next: number): boolean {
  return out.add(UNKNOWN_INO, next, DIRENT_TYPE[entry.type], nameToBytes(entry.name))
}

export function attrOf(s: TreeStat): Attr {
  return {
    ino: s.ino,
    size: s.size,
    blocks: s.blocks,
    atimeNs: s.atimeNs,
    mtimeNs: s.mtimeNs,
    ctimeNs: s.ctimeNs,
    mode: s.mode,
    nlink: s.nlink,
    uid: s.uid,
    gid: s.gid,
    rdev: s.rdev,
    blksize: s.blksize,
  }
}
