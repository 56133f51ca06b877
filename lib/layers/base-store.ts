// Finding and checking the base of a chain (SPEC §11): the record's relative path first (a store
// and its base moved together keep working), then its absolute path; the store found there must
// be the one recorded (identity) and unchanged since (generation), or it is refused.
import { relative, resolve } from 'node:path'
import * as fs from '../fs.js'
import { PagecowError } from '../errors.js'
import { hasDatabase } from '../store/database.js'
import type { StoreLowerRecord } from '../store/meta.js'
import type { StoreLower } from './store-lower.js'

/** Deeper chains are refused (ELOOP): every layer holds a database and an upper open. */
export const MAX_CHAIN_DEPTH = 64

/** Opens the image store at `path` read-only as a lower; `above` are the real paths of the stores over it. */
export type OpenLayer = (path: string, above: readonly string[]) => Promise<StoreLower>

/** The real path of a store directory, for telling a cycle; the path itself if it cannot be resolved. */
export function realStorePath(path: string): string {
  try {
    return fs.realpathSync(path)
  } catch {
    return path
  }
}

/**
 * Refuse a chain that loops back on itself (A <- B <- A) or grows past MAX_CHAIN_DEPTH: `path`
 * is about to be opened below the stores `above` (real paths, the top first).
 */
export function checkChainStep(path: string, above: readonly string[]): void {
  const real = realStorePath(path)
  if (above.includes(real)) {
    throw new PagecowError('ELOOP', `the chain of stores loops: ${[...above, real].join(' <- ')} (a store cannot be its own lower); re-point it with pagecow rebase --unsafe`)
  }
  if (above.length >= MAX_CHAIN_DEPTH) throw new PagecowError('ELOOP', `the chain of stores under ${above[0]} is deeper than ${MAX_CHAIN_DEPTH} layers`)
}

/** The record of `base` as the lower of the store at `top`: paths, identity and generation. */
export function storeLowerRecord(top: string, base: StoreLower): StoreLowerRecord {
  return { format: 'store', path: base.path, relative: relative(top, base.path) || '.', identity: base.base.identity, generation: base.base.generation }
}

/**
 * Open the base the store at `top` records, checked: ENOENT if no store is at its relative or its
 * absolute path, ESTALE if the store there is another one or changed since; the message says how
 * to re-point the store (`pagecow rebase --unsafe`).
 */
export async function openBase(top: string, record: StoreLowerRecord, above: readonly string[], openLayer: OpenLayer): Promise<StoreLower> {
  const candidates = [...new Set([resolve(top, record.relative), record.path])]
  let other: { path: string; identity: string } | undefined
  for (const path of candidates) {
    if (!hasDatabase(path)) continue
    const base = await openLayer(path, above)
    if (base.base.identity !== record.identity) {
      other ??= { path, identity: base.base.identity }
      base.close()
      continue
    }
    if (base.base.generation !== record.generation) {
      base.close()
      throw new PagecowError(
        'ESTALE',
        `the base store ${path} changed since ${top} was made on it (generation ${record.generation}, now ${base.base.generation}: something was committed into it); the store refuses to mix its pages with different base bytes`,
      )
    }
    return base
  }
  if (other) {
    throw new PagecowError(
      'ESTALE',
      `the store at ${other.path} is not the base ${top} was made on (identity ${other.identity}, recorded ${record.identity}); point it at its base with pagecow rebase ${top} --onto BASE --unsafe (--force to take this one anyway)`,
    )
  }
  throw new PagecowError(
    'ENOENT',
    `the base store of ${top} is missing: nothing at ${candidates.join(' or ')}; if it moved, point the store at it with pagecow rebase ${top} --onto NEWPATH --unsafe`,
  )
}
