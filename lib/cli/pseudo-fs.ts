// Kernel pseudo file systems (proc, sysfs, cgroup...) cannot hold a store, and making a directory
// on some of them never ends (Node's recursive mkdir retries ENOENT under /proc for ever), so
// `pagecow create` asks first which file system the store would land on.
import { existsSync, statfsSync } from 'node:fs'
import { dirname, resolve } from 'node:path'

/** statfs f_type magics (linux/magic.h) of file systems that hold no regular files of ours. */
const PSEUDO: ReadonlyMap<number, string> = new Map([
  [0x9fa0, 'proc'],
  [0x62656572, 'sysfs'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0x64626720, 'debugfs'],
  [0x74726163, 'tracefs'],
  [0x73636673, 'securityfs'],
  [0x6165676c, 'pstore'],
  [0xcafe4a11, 'bpf'],
  [0x62656570, 'configfs'],
  [0x65735543, 'fusectl'],
  [0xde5e81e4, 'efivarfs'],
  [0x1cd1, 'devpts'],
  [0x19800202, 'mqueue'],
  [0x42494e4d, 'binfmt_misc'],
  [0x6e736673, 'nsfs'],
  [0xf97cff8c, 'selinuxfs'],
  [0x43415d53, 'smackfs'],
  [0x0187, 'autofs'],
])

/** The pseudo file system `path` is (or would be created) on, or undefined for a real one. */
export function pseudoFileSystemOf(path: string): string | undefined {
  let existing = resolve(path)
  while (!existsSync(existing) && dirname(existing) !== existing) existing = dirname(existing)
  let type: number
  try {
    type = statfsSync(existing).type
  } catch {
    return undefined // not ours to judge: creating the store reports what is wrong
  }
  return PSEUDO.get(type)
}
