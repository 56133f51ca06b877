// Forward-only schema migrations: numbered SQL files in migrations/, version in user_version.
import type Database from 'better-sqlite3'
import { fileURLToPath } from 'node:url'
import { readdirSync, readFileSync } from '../fs.js'
import { PagecowError } from '../errors.js'
import { sumExistingPages } from '../integrity/sum-existing-pages.js'
import { sumExistingRows } from '../integrity/sum-existing-rows.js'
import { rowSum } from '../integrity/row-sums.js'

const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url))
const MIGRATION_NAME = /^(\d+)-[\w-]+\.sql$/

export interface Migration {
  version: number
  name: string
  sql: string
}

/** The migrations shipped with this pagecow, in order. */
export function loadMigrations(dir: string = MIGRATIONS_DIR): Migration[] {
  const migrations: Migration[] = []
  for (const name of readdirSync(dir)) {
    const match = MIGRATION_NAME.exec(name)
    if (!match) continue
    migrations.push({ version: Number(match[1]), name, sql: readFileSync(dir + name, 'utf8') })
  }
  return migrations.sort((a, b) => a.version - b.version)
}

const MIGRATIONS = loadMigrations()

/**
 * What a migration needs besides its SQL, run in its transaction after it: work on the store's
 * files that SQL cannot do (`dbPath` is the database's path).
 */
const HOOKS: Record<number, (db: Database.Database, dbPath: string) => void> = {
  40: (db, dbPath) => {
    sumExistingRows(db)
    sumExistingPages(db, dbPath)
  },
  // The store record was rewritten by the SQL: its checksum follows it.
  70: (db) => {
    const row = db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'store'").get()
    if (row) db.prepare("UPDATE meta SET sum = ? WHERE key = 'store'").run(rowSum.meta('store', row.value))
  },
}

/** The schema version this code writes. */
export const SCHEMA_VERSION = MIGRATIONS.at(-1)?.version ?? 0

export function schemaVersion(db: Database.Database): number {
  return db.pragma('user_version', { simple: true }) as number
}

/** Refuse a database written by a newer pagecow; it may hold state this code cannot read. */
export function checkSchemaVersion(db: Database.Database, what: string): number {
  const version = schemaVersion(db)
  if (version > SCHEMA_VERSION) {
    throw new PagecowError(
      'EVERSION',
      `${what} has schema version ${version}, newer than this pagecow understands (${SCHEMA_VERSION}); upgrade pagecow`,
    )
  }
  return version
}

/**
 * A read-only open never writes, so it cannot upgrade: a database older than this code is refused
 * (the tables it reads have changed), with the way to upgrade it.
 */
export function checkReadableVersion(db: Database.Database, what: string): void {
  const version = checkSchemaVersion(db, what)
  if (version < SCHEMA_VERSION) {
    throw new PagecowError(
      'EVERSION',
      `${what} has schema version ${version}, written by an older pagecow; this one (${SCHEMA_VERSION}) upgrades it when it opens the store for writing (e.g. \`pagecow flush STORE\`), which a read-only open never does`,
    )
  }
}

/**
 * Apply every migration newer than the database, each in its own transaction, then VACUUM: a
 * migration that rebuilds a table leaves its old pages free, and a free page's content is checked
 * by nothing (fsck could not tell garbage there from a page in use).
 */
export function migrate(db: Database.Database, what: string): void {
  const current = checkSchemaVersion(db, what)
  let applied = 0
  for (const migration of MIGRATIONS) {
    if (migration.version <= current) continue
    db.transaction(() => {
      db.exec(migration.sql)
      HOOKS[migration.version]?.(db, what)
      db.pragma(`user_version = ${migration.version}`)
    })()
    applied++
  }
  if (applied > 0) db.exec('VACUUM')
}
