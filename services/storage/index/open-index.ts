import { isDiskRefusal } from '../disk-errors.js'
import { PostgresRunIndex } from './postgres.js'
import type { ReconcileReport, RunIndex, RunSource } from './run-index.js'
import { SqliteRunIndex } from './sqlite.js'

export interface OpenedIndex {
  index: SqliteRunIndex
  /** the runs a stopped process had begun to write, read again now */
  journal: { journaled: number, skipped: ReconcileReport['skipped'] }
  /** why the index is in memory (its file's disk refused to write); null when the file is used */
  inMemoryBecause: unknown
}

/**
 * The index file at `path`, with the writes a stopped process had begun
 * caught up: what a start needs before the store takes writes. It takes
 * time in the number of those writes, not of runs; a build or a comparison
 * with the whole store is the index's catchUp, for the background.
 *
 * When the file's disk takes no writes (full, read-only, failing) the
 * service must still start and list its runs: the index is then built from
 * the store in memory, for this process only, and the file is removed (which
 * gives its room back), so that the next start builds it again instead of
 * trusting a file that missed this process's changes. Any other failure
 * stops the start.
 */
export async function openRunIndex (path: string, source: RunSource): Promise<OpenedIndex> {
  let index: SqliteRunIndex | undefined
  try {
    index = await SqliteRunIndex.open({ path })
    return { index, journal: await index.recoverJournal(source), inMemoryBecause: null }
  } catch (err) {
    await index?.close()
    if (!isDiskRefusal(err)) throw err
    await SqliteRunIndex.remove(path).catch(() => {})
    const memory = await SqliteRunIndex.open({ path: null })
    return { index: memory, journal: { journaled: 0, skipped: [] }, inMemoryBecause: err }
  }
}

export interface ConfiguredIndex {
  index: RunIndex
  journal: OpenedIndex['journal']
  /** why a SQLite index is in memory; null otherwise */
  inMemoryBecause: unknown
  /** the check of the index's own storage after a stop that was not clean; null when the database server does its own */
  checkIntegrity: (() => Promise<string>) | null
  /** what the logs name as the index's place */
  where: string
  /** why the index is being built from the store; null when it was complete at start */
  rebuilt: ReconcileReport['rebuilt']
}

/**
 * The index the settings name: PostgreSQL when databaseUrl is set (shared by
 * several instances), else the SQLite file at path; its journal caught up.
 */
export async function openConfiguredIndex (settings: { databaseUrl?: string | undefined, poolSize: number, path: string }, source: RunSource): Promise<ConfiguredIndex> {
  if (settings.databaseUrl !== undefined) {
    const index = await PostgresRunIndex.open({ url: settings.databaseUrl, poolSize: settings.poolSize })
    try {
      return { index, journal: await index.recoverJournal(source), inMemoryBecause: null, checkIntegrity: null, where: index.description, rebuilt: index.rebuilt }
    } catch (err) {
      await index.close()
      throw err
    }
  }
  const opened = await openRunIndex(settings.path, source)
  return { ...opened, checkIntegrity: async () => await opened.index.checkIntegrity(), where: settings.path, rebuilt: opened.index.rebuilt }
}

/** Removes what the configured index holds, so that the next open and catchUp build it again from the store. */
export async function clearConfiguredIndex (settings: { databaseUrl?: string | undefined, poolSize: number, path: string }): Promise<void> {
  if (settings.databaseUrl !== undefined) await PostgresRunIndex.clear({ url: settings.databaseUrl, poolSize: settings.poolSize })
  else await SqliteRunIndex.remove(settings.path)
}
