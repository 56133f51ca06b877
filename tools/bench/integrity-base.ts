// The unchecked baseline of the integrity cases: the library of pagecow 0.1.0 (commit 6f2ef6c, the
// last release before page checksums), loaded from its own git worktree in the same process, so
// that the checked and the unchecked store run side by side on the same machine at the same time.
// Make it once with:
//   git worktree add ../bench-base 6f2ef6c && cp -a node_modules build ../bench-base/
// (node_modules and build/ of a checkout of 6f2ef6c; PAGECOW_BENCH_BASE names another place).
import { existsSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type * as Current from '../../lib/index.js'

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const BASE_COMMIT = '6f2ef6c'

/**
 * The parts of the public API the cases use. 0.1.0 has the same shapes (the integrity work added
 * no parameter to them), so the current declarations describe both.
 */
export interface StoreLibrary {
  ImageStore: typeof Current.ImageStore
  TreeStore: typeof Current.TreeStore
  checkStore: (dir: string) => Promise<Current.FsckReport>
  VERSION: string
}

export interface BaseLibrary {
  lib: StoreLibrary
  /** Where it was loaded from. */
  root: string
}

let loaded: Promise<BaseLibrary | { missing: string }> | undefined

/** The 0.1.0 library, or why it is not there (the cases then compare with the raw path only). */
export function baseLibrary(): Promise<BaseLibrary | { missing: string }> {
  loaded ??= load()
  return loaded
}

async function load(): Promise<BaseLibrary | { missing: string }> {
  const root = resolve(process.env['PAGECOW_BENCH_BASE'] ?? join(REPO, '..', 'bench-base'))
  const entry = join(root, 'lib', 'index.ts')
  if (!existsSync(entry) || !existsSync(join(root, 'node_modules')) || !existsSync(join(root, 'build', 'Release', 'pagecow.node'))) {
    return { missing: `no 0.1.0 checkout with node_modules and build/ at ${root} (see tools/bench/integrity-base.ts)` }
  }
  const lib = (await import(pathToFileURL(entry).href)) as StoreLibrary
  if (lib.VERSION !== '0.1.0') return { missing: `${root} holds pagecow ${lib.VERSION}, not 0.1.0` }
  return { lib, root }
}
