import { isDiskRefusal } from '../disk-errors.js'
import type { ReconcileReport, RunSource } from './run-index.js'
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
