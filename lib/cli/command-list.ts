// Every pagecow command: its name, arguments and one-line summary for `pagecow --help`, and how to
// load its module. A command's module (with zod and the library parts it needs) is loaded only when
// that command runs or its help is asked for; test/cli-commands.ts checks that each module agrees
// with its row here.
import type { Command } from 'commander'
import type { CliIo } from './cli-io.js'

export interface CommandEntry {
  name: string
  /** As the command declares them: `<STORE> [PATH]`. */
  args: string
  summary: string
  /** The command's module: a function making its commander Command for a run on `io`. */
  load(): Promise<(io: CliIo) => Command>
}

/** In the order `pagecow --help` lists them. */
export const COMMANDS: readonly CommandEntry[] = [
  { name: 'create', args: '<STORE>', summary: 'create a store over a raw image, a directory tree or a squashfs image', load: async () => (await import('./commands/create.js')).createCommand },
  { name: 'info', args: '<STORE>', summary: 'show an image store and the chain of layers under it', load: async () => (await import('./commands/info.js')).infoCommand },
  { name: 'rebase', args: '<STORE>', summary: 'point an image store at its moved lower (--unsafe)', load: async () => (await import('./commands/rebase.js')).rebaseCommand },
  { name: 'inspect', args: '<STORE> [PATH]', summary: 'draw the page map and the totals; for a tree, what changed', load: async () => (await import('./commands/inspect.js')).inspectCommand },
  { name: 'map', args: '<STORE> [PATH]', summary: 'list the extents (qemu-img map fields with --output=json)', load: async () => (await import('./commands/map.js')).mapCommand },
  { name: 'read', args: '<STORE> [PATH]', summary: 'read bytes of the merged image, or of a file of a tree store', load: async () => (await import('./commands/read.js')).readCommand },
  { name: 'write', args: '<STORE> [PATH]', summary: 'write bytes from stdin or a file', load: async () => (await import('./commands/write.js')).writeCommand },
  { name: 'zero', args: '<STORE> [PATH]', summary: 'zero a range (whole pages become ZERO)', load: async () => (await import('./commands/zero.js')).zeroCommand },
  { name: 'discard', args: '<STORE> [PATH]', summary: 'trim a range (whole pages become ZERO)', load: async () => (await import('./commands/discard.js')).discardCommand },
  { name: 'truncate', args: '<STORE> [PATH]', summary: "set the image's (or a tree file's) size", load: async () => (await import('./commands/truncate.js')).truncateCommand },
  { name: 'flush', args: '<STORE>', summary: 'make earlier writes durable', load: async () => (await import('./commands/flush.js')).flushCommand },
  { name: 'mark', args: '<STORE> <NAME>', summary: 'take a mark: a named moment to list changes since', load: async () => (await import('./commands/mark.js')).markCommand },
  { name: 'marks', args: '<STORE>', summary: 'list the marks', load: async () => (await import('./commands/marks.js')).marksCommand },
  { name: 'unmark', args: '<STORE> <NAME>', summary: 'remove a mark', load: async () => (await import('./commands/unmark.js')).unmarkCommand },
  { name: 'changes', args: '<STORE> [PATH]', summary: 'what changed since a mark', load: async () => (await import('./commands/changes.js')).changesCommand },
  { name: 'freeze', args: '<STORE> [PATH]', summary: 'make the writers of a served image or file wait until thaw', load: async () => (await import('./commands/freeze.js')).freezeCommand },
  { name: 'thaw', args: '<STORE> [PATH]', summary: 'let the writers of a frozen image or file go on', load: async () => (await import('./commands/thaw.js')).thawCommand },
  { name: 'fsck', args: '<STORE>', summary: 'check a store (every page against its checksum); exit 4 if it is not clean', load: async () => (await import('./commands/fsck.js')).fsckCommand },
  { name: 'verify', args: '<STORE>', summary: 'recheck every page against its recorded sum; --record binds the lower', load: async () => (await import('./commands/verify.js')).verifyCommand },
  { name: 'compact', args: '<STORE>', summary: 'give back the space of pages equal to the lower or all zeros', load: async () => (await import('./commands/compact.js')).compactCommand },
  { name: 'export', args: '<STORE> <OUTPUT> [PATH]', summary: 'write the merged image to a raw file, or the merged tree to a directory', load: async () => (await import('./commands/export.js')).exportCommand },
  { name: 'apply', args: '<INCREMENTAL> <TARGET>', summary: 'apply an incremental (export --since) onto the image, file or tree it was made against', load: async () => (await import('./commands/apply.js')).applyCommand },
  { name: 'serve', args: '<STORE>', summary: 'export the store over NBD', load: async () => (await import('./commands/serve.js')).serveCommand },
  { name: 'mount', args: '<STORE> <MOUNTPOINT>', summary: 'mount the store as a file system (FUSE)', load: async () => (await import('./commands/mount.js')).mountCommand },
  { name: 'umount', args: '<MOUNTPOINT>', summary: 'unmount a mounted store', load: async () => (await import('./commands/umount.js')).umountCommand },
  { name: 'watch', args: '<STORE>', summary: "print a running server's events as JSON lines", load: async () => (await import('./commands/watch.js')).watchCommand },
  { name: 'demo', args: '[DIR]', summary: 'a sample image, store and page map to look at', load: async () => (await import('./commands/demo.js')).demoCommand },
  // Tree stores: the namespace.
  { name: 'ls', args: '<STORE> [PATH]', summary: 'list a directory of a tree store (merged view)', load: async () => (await import('./commands/ls.js')).lsCommand },
  { name: 'stat', args: '<STORE> <PATH>', summary: 'show one object of a tree store', load: async () => (await import('./commands/stat.js')).statCommand },
  { name: 'mkdir', args: '<STORE> <PATH>', summary: 'make a directory in a tree store', load: async () => (await import('./commands/mkdir.js')).mkdirCommand },
  { name: 'rmdir', args: '<STORE> <PATH>', summary: 'remove an empty directory from a tree store', load: async () => (await import('./commands/rmdir.js')).rmdirCommand },
  { name: 'rm', args: '<STORE> <PATH>', summary: 'remove a file (or, with -r, a directory) from a tree store', load: async () => (await import('./commands/rm.js')).rmCommand },
  { name: 'mv', args: '<STORE> <FROM> <TO>', summary: 'rename a file or directory of a tree store', load: async () => (await import('./commands/mv.js')).mvCommand },
  { name: 'chmod', args: '<STORE> <MODE> <PATH>', summary: 'set the permission bits of an object of a tree store', load: async () => (await import('./commands/chmod.js')).chmodCommand },
  { name: 'symlink', args: '<STORE> <TARGET> <PATH>', summary: 'make a symlink in a tree store', load: async () => (await import('./commands/symlink.js')).symlinkCommand },
]
