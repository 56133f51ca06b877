// Forward-only schema migrations: numbered SQL files in migrations/, version in user_version.
import type Database from 'better-sqlite3'
import { fileURLToPath } from 'node:url'
import { readdirSync, readFileSync } from '../fs.js'
import { PagecowError } from '../errors.js'

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

/** Apply every migration newer than the database, each in its own transaction. */
export function migrate(db: Database.Database, what: string): void {
  const current = checkSchemaVersion(db, what)
  for (const migration of MIGRATIONS) {
    if (migration.version <= current) continue
    db.transaction(() => {
      db.exec(migration.sql)
      db.pragma(`user_version = ${migration.version}`)
    })()
  }
}
