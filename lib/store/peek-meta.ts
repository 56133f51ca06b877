// The store record of a store directory read without taking its lock or opening its files: what
// kind it is, and (for a base about to be used) its page size and seal.
import { fromSystemError } from '../errors.js'
import { DATABASE_FILE, openDatabase } from './database.js'
import { readStoreMeta, type StoreMeta } from './meta.js'

/**
 * The record of the store at `path` (absolute; it must hold a database). Unchecked: its schema may
 * be older than checksums (the record reads the same in every schema); opening the store checks it.
 */
export function peekStoreMeta(path: string): StoreMeta {
  let db
  try {
    db = openDatabase(`${path}/${DATABASE_FILE}`, { readOnly: true, anyOlderSchema: true })
    return readStoreMeta(db, path, { unchecked: true })
  } catch (err) {
    throw fromSystemError(err, `opening the store ${path}`)
  } finally {
    db?.close()
  }
}
