import { isDiskRefusal } from '../disk-errors.js'
import type { ReconcileReport, RunSource } from './run-index.js'
import { SqliteRunIndex } from './sqlite.js'

export interface OpenedIndex {
  index: SqliteRunIndex
  report: ReconcileReport
  /** why the index is in memory (its file's disk refused to write); null when the file is used */
  inMemoryBecause: unknown
}

/**
 * The index file at `path`, reconciled with the store, as each start needs
 * it. When the file's disk takes no writes (full, read-only, failing) the
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
    return { index, report: await index.reconcile(source), inMemoryBecause: null }
  } catch (err) {
    await index?.close()
    if (!isDiskRefusal(err)) throw err
    await SqliteRunIndex.remove(path).catch(() => {})
    const memory = await SqliteRunIndex.open({ path: null })
    return { index: memory, report: await memory.reconcile(source), inMemoryBecause: err }
  }
}
