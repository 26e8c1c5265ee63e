import pg from 'pg'
import type { Test } from 'tap'
import { useIndexEnv } from './helper.js'
import { freshDatabase, killIndexSessions } from './postgres.js'

/**
 * Makes every app the test file builds use a PostgreSQL index: one new
 * database per store (RUNS_DIR), so that an app started again over the
 * same store finds the same index, as it would find the same SQLite file.
 */
export function usePostgresIndex (): void {
  const databases = new Map<string, Promise<string>>()
  useIndexEnv('postgres', async (t: Test, runsDir: string) => {
    let url = databases.get(runsDir)
    if (url === undefined) {
      url = freshDatabase(t)
      databases.set(runsDir, url)
    }
    return { DATABASE_URL: await url }
  }, async (runsDir) => {
    const url = databases.get(runsDir)
    if (url === undefined) return
    const client = new pg.Client({ connectionString: await url })
    await client.connect()
    try {
      await client.query('DROP SCHEMA public CASCADE; CREATE SCHEMA public')
    } finally {
      await client.end()
    }
  }, async (runsDir) => {
    const url = databases.get(runsDir)
    if (url !== undefined) await killIndexSessions(await url)
  })
}
