import { readdir, readFile } from 'node:fs/promises'
import type pg from 'pg'
import { LOCK_SPACE } from './lock-keys.js'

/** Where the SQL files are, beside the compiled code too (the build copies them). */
export const MIGRATIONS_DIR = new URL('../storage/index/migrations/postgres/', import.meta.url)

// Every instance migrates at start: the lock makes the others wait for the first, then find nothing to do.
const MIGRATION_LOCK = [LOCK_SPACE.migrations, 0] as const

const FILE = /^(\d{3})_[a-z0-9_]+\.sql$/

/**
 * Applies the SQL files of `dir` (NNN_name.sql) that the database lacks,
 * in order, in one transaction under an advisory lock, and notes each in
 * schema_migrations. Returns the versions applied now ([] when none).
 * A database that has a version this code does not know was migrated by a
 * newer release: refused, as this one would misread its tables.
 */
export async function migrate (pool: pg.Pool, dir: URL = MIGRATIONS_DIR): Promise<string[]> {
  const files = (await readdir(dir)).filter((name) => FILE.test(name)).sort()
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    await client.query('SELECT pg_advisory_xact_lock($1, $2)', [...MIGRATION_LOCK])
    await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())')
    const known = new Set((await client.query<{ version: string }>('SELECT version FROM schema_migrations')).rows.map((row) => row.version))
    const versions = new Set(files.map((name) => FILE.exec(name)![1]!))
    const unknown = [...known].filter((version) => !versions.has(version))
    if (unknown.length > 0) throw new Error(`the database was migrated by a newer runstore (migrations ${unknown.sort().join(', ')}); start that release or a newer one`)
    const applied: string[] = []
    for (const name of files) {
      const version = FILE.exec(name)![1]!
      if (known.has(version)) continue
      await client.query(await readFile(new URL(name, dir), 'utf8'))
      await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [version, name])
      applied.push(version)
    }
    await client.query('COMMIT')
    return applied
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {})
    throw err
  } finally {
    client.release()
  }
}
