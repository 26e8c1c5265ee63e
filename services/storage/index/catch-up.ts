import { setImmediate as nextTurn } from 'node:timers/promises'
import type { RunMetadata } from '../../../schemas/run.js'
import type { ArchivedRunSource, IndexProgress, ReconcileReport, RunSource } from './run-index.js'

/** A run as the store holds it now; null: gone. */
export interface StoredEntry {
  run_id: string
  metadata: RunMetadata | null
}

/** What an index offers the catch-up (SqliteRunIndex answers at once, PostgresRunIndex with promises). */
export interface CatchUpTarget {
  readonly rebuilt: ReconcileReport['rebuilt']
  /** the index is being built from the store; rows are missing until it ends */
  readonly building: boolean
  /** closing: stop at the next batch */
  readonly stopped: boolean
  /** the last process could not write some changes: every run must be read */
  readonly fullScanNeeded: boolean
  /** an interrupted build had indexed every stored run above this id */
  readonly buildResumesBelow: string | null
  /** what changed of the phase; the count of runs indexed goes with every call to whoever follows the progress */
  setProgress: (progress: Partial<Omit<IndexProgress, 'indexed_runs'>>) => void
  indexedRunIds: (below: string | null, limit: number) => string[] | Promise<string[]>
  applyStored: (entries: StoredEntry[], marks?: { buildBelow?: string, built?: boolean, fullScanDone?: boolean }) => StoredResults | Promise<StoredResults>
  /** archived run ids the index lists, with their archive */
  archivedRuns: () => Map<string, string> | Promise<Map<string, string>>
  /** writes archived runs and removes rows whose archive no longer holds them; returns how many were written */
  applyArchived: (entries: Array<{ metadata: RunMetadata, archive: string }>, gone?: Array<{ run_id: string, archive: string }>) => number | Promise<number>
}

/**
 * What an index keeps of its catch-up: it runs once (a second call joins
 * it), its phase for `/ready`, the runs removed while it runs (what it read
 * of them before must not bring them back), and the stop at close.
 */
export class CatchUp {
  readonly #indexedRuns: () => number
  #progress: Omit<IndexProgress, 'indexed_runs'>
  #onProgress: ((progress: IndexProgress) => void) | undefined
  #running: Promise<ReconcileReport> | null = null
  #removed: Set<string> | null = null
  #stopped = false

  /** indexedRuns: the index's count of runs, read whenever the progress is */
  constructor (building: boolean, indexedRuns: () => number) {
    this.#indexedRuns = indexedRuns
    this.#progress = { phase: building ? 'building' : 'catching-up', complete: !building, stored_runs: null }
  }

  /** Runs `work` (catchUpIndex, after what the index reads first) unless it runs already. */
  async run (work: () => Promise<ReconcileReport>, onProgress?: (progress: IndexProgress) => void): Promise<ReconcileReport> {
    this.#onProgress = onProgress
    this.#running ??= (async () => {
      this.#removed = new Set()
      try {
        return await work()
      } finally {
        this.#removed = null
        if (!this.#stopped) this.#progress = { ...this.#progress, phase: 'ready', complete: true, stored_runs: null }
      }
    })()
    return await this.#running
  }

  /** closing: the catch-up ends at its next batch; resolves once it has */
  async stop (): Promise<void> {
    this.#stopped = true
    await this.#running?.catch(() => {})
  }

  get stopped (): boolean {
    return this.#stopped
  }

  noteRemoved (runId: string): void {
    this.#removed?.add(runId)
  }

  removedMeanwhile (runId: string): boolean {
    return this.#removed?.has(runId) === true
  }

  progress (): IndexProgress {
    return { ...this.#progress, indexed_runs: this.#indexedRuns() }
  }

  setProgress (progress: Partial<Omit<IndexProgress, 'indexed_runs'>>): void {
    this.#progress = { ...this.#progress, ...progress }
    this.#onProgress?.(this.progress())
  }
}

/** how each entry of applyStored went */
export type StoredResults = Array<'added' | 'updated' | 'same' | Error>

const READ_BATCH = 64
const ID_CHUNK = 5000

/**
 * Brings an index in line with the store while the service serves. A build
 * reads every run, newest first, and notes after each batch how far it got,
 * so a build cut short by a crash or a stop resumes there. Then (and on
 * every start) the index's run ids are merged with the store's listing:
 * runs copied in by hand are read and added, entries whose folder is gone
 * are removed once a fresh read confirms it (a run made meanwhile is not).
 * Every write yields to a live change that came first.
 */
export async function catchUpIndex (target: CatchUpTarget, source: RunSource): Promise<ReconcileReport> {
  const report: ReconcileReport = { rebuilt: target.rebuilt, fullScan: target.building || target.fullScanNeeded, journaled: 0, added: 0, updated: 0, removed: 0, skipped: [] }
  const stored = sortedLower(await source.listRunIds())
  target.setProgress({ stored_runs: stored.length })

  if (report.fullScan) {
    const building = target.building
    const below = building ? target.buildResumesBelow : null
    const toRead = below === null ? stored : stored.filter((id) => id < below)
    if (!await readInto(target, source, toRead, report, building)) return report
    await target.applyStored([], building ? { built: true, fullScanDone: true } : { fullScanDone: true })
    target.setProgress({ phase: 'catching-up', complete: true })
  }

  const { missing, gone } = await compare(target, stored)
  // A run the full read just skipped is missing from the index for that reason: read and reported once.
  const skipped = new Set(report.skipped.map((s) => s.run_id))
  if (target.stopped || !await readInto(target, source, missing.filter((id) => !skipped.has(id)), report, false)) return report
  for (let start = 0; start < gone.length; start += READ_BATCH) {
    if (target.stopped) return report
    const batch = gone.slice(start, start + READ_BATCH)
    const reads = await Promise.allSettled(batch.map(async (id) => await source.readMetadata(id)))
    const confirmed = batch.filter((_, i) => isGone(reads[i]!))
    await target.applyStored(confirmed.map((id) => ({ run_id: id, metadata: null })))
    report.removed += confirmed.length
  }
  if (source.archives !== undefined && !target.stopped) await catchUpArchived(target, source.archives, new Set(stored), report)
  return report
}

/**
 * The archived runs: those the index lacks (a rebuilt index, an archive made
 * while the service was stopped) are read from their archive and added; rows
 * whose archive no longer holds them (restored, pruned) are removed. A run
 * that is live in the store is never listed as archived.
 */
async function catchUpArchived (target: CatchUpTarget, archives: ArchivedRunSource, live: Set<string>, report: ReconcileReport): Promise<void> {
  // Taken before the archives are read: a run archived meanwhile is not among the rows to check.
  const indexed = await target.archivedRuns()
  const listed = await archives.listArchivedRuns()
  const held = new Set(listed.map((r) => r.run_id.toLowerCase()))
  const wanted = listed.filter((r) => !live.has(r.run_id.toLowerCase()) && indexed.get(r.run_id.toLowerCase()) !== r.archive)
  for (let start = 0; start < wanted.length; start += READ_BATCH) {
    if (target.stopped) return
    const batch = wanted.slice(start, start + READ_BATCH)
    try {
      const metadata = await archives.readArchivedMetadata(batch)
      report.added += await target.applyArchived(metadata.map((m, i) => ({ metadata: m, archive: batch[i]!.archive })))
    } catch (err) {
      for (const run of batch) report.skipped.push({ run_id: run.run_id, reason: `in ${run.archive}: ${describe(err)}` })
    }
  }
  const gone = [...indexed].filter(([id]) => !held.has(id)).map(([id, archive]) => ({ run_id: id, archive }))
  await target.applyArchived([], gone)
  report.removed += gone.length
}

/** Reads the runs in batches and writes them; false when the index stopped meanwhile. */
async function readInto (target: CatchUpTarget, source: RunSource, ids: string[], report: ReconcileReport, building: boolean): Promise<boolean> {
  for (let start = 0; start < ids.length; start += READ_BATCH) {
    if (target.stopped) return false
    const batch = ids.slice(start, start + READ_BATCH)
    const reads = await Promise.allSettled(batch.map(async (id) => await source.readMetadata(id)))
    const entries: StoredEntry[] = []
    reads.forEach((read, i) => {
      const runId = batch[i]!
      if (read.status === 'rejected') {
        // Deleted since the listing: nothing to index, nothing to report.
        if (!isGone(read)) report.skipped.push({ run_id: runId, reason: describe(read.reason) })
      } else if (typeof read.value.run_id !== 'string' || read.value.run_id.toLowerCase() !== runId) {
        report.skipped.push({ run_id: runId, reason: 'metadata.json names another run' })
      } else {
        entries.push({ run_id: runId, metadata: read.value })
      }
    })
    if (target.stopped) return false
    const results = await target.applyStored(entries, building ? { buildBelow: batch.at(-1)! } : {})
    results.forEach((result, i) => {
      if (result instanceof Error) report.skipped.push({ run_id: entries[i]!.run_id, reason: result.message })
      else if (result === 'added') report.added++
      else if (result === 'updated') report.updated++
    })
    target.setProgress({}) // a batch more is indexed
  }
  return true
}

/** Store ids the index lacks and index ids the store lacks, by merging the two newest-first lists a chunk at a time. */
async function compare (target: CatchUpTarget, stored: string[]): Promise<{ missing: string[], gone: string[] }> {
  const missing: string[] = []
  const gone: string[] = []
  let i = 0
  let chunk = await target.indexedRunIds(null, ID_CHUNK)
  for (;;) {
    for (const id of chunk) {
      while (i < stored.length && stored[i]! > id) missing.push(stored[i++]!)
      if (i < stored.length && stored[i] === id) i++
      else gone.push(id)
    }
    if (chunk.length < ID_CHUNK || target.stopped) break
    await nextTurn()
    chunk = await target.indexedRunIds(chunk.at(-1)!, ID_CHUNK)
  }
  missing.push(...stored.slice(i))
  return { missing, gone }
}

/** Run ids as the index keys them (lower case), newest first. */
function sortedLower (ids: string[]): string[] {
  if (ids.every((id) => id === id.toLowerCase())) return ids
  return ids.map((id) => id.toLowerCase()).sort().reverse()
}

function isGone (read: PromiseSettledResult<unknown>): boolean {
  return read.status === 'rejected' && (read.reason as { code?: string }).code === 'RUN_NOT_FOUND'
}

export function describe (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
