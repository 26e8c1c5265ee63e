import Database from 'better-sqlite3'
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { dirname } from 'node:path'
import type { MediaType } from '../../../schemas/media.js'
import type { RunMetadata } from '../../../schemas/run.js'
import { IndexDamagedError } from '../../errors.js'
import { CatchUp, catchUpIndex, describe, type CatchUpTarget, type StoredEntry, type StoredResults } from './catch-up.js'
import { checkIndexFile } from './integrity-check.js'
import {
  COUNT_LIMIT, MAX_LIST_LIMIT, encodeCursor, preferredSortKey,
  type IndexProgress, type ReconcileReport, type RunIndex, type RunIndexEntry, type RunIndexStats, type RunListFilters, type RunListPaging, type RunListResult, type RunSource
} from './run-index.js'
import { countedByStatus, facetsOf, fold, indexEntry } from './index-entry.js'
import { getMeta, isDamage, isReadableVersion, openChecked, removeDatabaseFiles, SCHEMA, setMeta, SQLITE_INDEX_VERSION } from './sqlite-file.js'
import { listingQuery } from './sqlite-listing.js'

export interface SqliteRunIndexOptions {
  /** the SQLite file, created (with its folder) when missing; null: in memory, for this process only */
  path: string | null
}

const CACHE_KIB = 64 * 1024

interface EntryRow extends Omit<RunIndexEntry, 'media_types' | 'backends'> {
  seq: number
  media_types: string
  backends: string
}

/**
 * A SQLite index of the runs for listing and filtering. It is derived data:
 * the store is the truth, so a missing, outdated or damaged index file is
 * built again from it, in the background while the service serves. A
 * journal of begun writes lets a start after a crash catch up by reading
 * only the runs that were being written. Writes are synchronous inside
 * (better-sqlite3), so they land in the order of the store's change events;
 * WAL lets listings read while a write commits.
 */
export class SqliteRunIndex implements RunIndex, CatchUpTarget {
  /** null when the index is in memory */
  readonly path: string | null
  readonly description: string
  readonly #db: Database.Database
  readonly #statements = new Map<string, Database.Statement>()
  readonly #ping: Database.Statement
  readonly #upsertTransaction: (metadata: RunMetadata, archive: string | null) => void
  readonly #removeTransaction: (runId: string) => void
  /** why this file was started afresh; null when the existing one was opened */
  readonly rebuilt: ReconcileReport['rebuilt']
  readonly lastStopWasClean: boolean
  /** opened with openReadOnly: nothing is ever written, closing included */
  readonly readOnly: boolean
  // Changes that could not be written (its disk was full), by run id, the latest of each run
  // (null: removed). Tried again before every later change and listing, so the index catches
  // up once there is room; any left at close make the next start read every run again.
  readonly #unwritten = new Map<string, { metadata: RunMetadata, archive: string | null } | null>()
  #journalMissed = false
  /** the phase of a build or catch-up; the number of runs indexed is counted when asked for */
  readonly #catchUp: CatchUp

  private constructor (db: Database.Database, path: string | null, rebuilt: ReconcileReport['rebuilt'], lastStopWasClean: boolean, readOnly = false) {
    this.#db = db
    this.path = path
    this.readOnly = readOnly
    this.lastStopWasClean = lastStopWasClean
    this.description = path === null ? 'sqlite in memory' : `sqlite:${path}`
    this.rebuilt = rebuilt
    this.#ping = db.prepare('SELECT 1').pluck()
    this.#upsertTransaction = db.transaction((metadata: RunMetadata, archive: string | null) => { this.#write(metadata, archive, false) })
    this.#removeTransaction = db.transaction((runId: string) => { this.#delete(runId) })
    this.#catchUp = new CatchUp(this.building, () => this.#count())
  }

  /**
   * Opens the index at options.path, starting it afresh when it is missing,
   * of another version or corrupt. Then recoverJournal before the store
   * takes writes, and catchUp in the background.
   */
  static async open (options: SqliteRunIndexOptions): Promise<SqliteRunIndex> {
    const { path } = options
    if (path === null) {
      const memory = new Database(':memory:')
      memory.exec(SCHEMA)
      return new SqliteRunIndex(memory, null, 'missing', false)
    }
    await mkdir(dirname(path), { recursive: true })
    const existed = existsSync(path)
    let rebuilt: ReconcileReport['rebuilt'] = null
    let db = openChecked(path)
    try {
      if (db === null) {
        rebuilt = 'corrupt'
      } else if (db.pragma('user_version', { simple: true }) !== SQLITE_INDEX_VERSION) {
        db.close()
        rebuilt = existed ? 'old-version' : 'missing'
      }
      if (rebuilt !== null) {
        await removeDatabaseFiles(path)
        db = new Database(path)
        db.pragma('journal_mode = WAL')
        db.exec(SCHEMA)
        // The version goes in at once; 'built' says whether the rows are complete, so an interrupted build resumes.
        db.pragma(`user_version = ${SQLITE_INDEX_VERSION}`)
        setMeta(db, 'built', '0')
        setMeta(db, 'build_reason', rebuilt)
      }
      const database = db!
      database.pragma('synchronous = NORMAL')
      // A listing that the indexes cannot narrow (one user's runs, each checked for a word) reads rows all over a
      // large file: kept in SQLite's cache (default 2 MiB), a repeated one reads memory instead of making a system
      // call per page (5× faster at a million runs). Not mmap: an I/O error would then kill the process (SIGBUS).
      database.pragma(`cache_size = ${-CACHE_KIB}`)
      // Another process (the CLI) may write while this one does: wait for its transaction rather than fail.
      database.pragma('busy_timeout = 5000')
      const lastStopWasClean = getMeta(database, 'clean_stop') === '1'
      // Durably "in use" before anything else is written: a crash from here on is seen by the next start.
      setMeta(database, 'clean_stop', '0')
      database.pragma('wal_checkpoint(TRUNCATE)')
      const reason = getMeta(database, 'build_reason') as ReconcileReport['rebuilt']
      return new SqliteRunIndex(database, path, rebuilt ?? (getMeta(database, 'built') === '1' ? null : reason), lastStopWasClean)
    } catch (err) {
      // A disk that takes no writes fails here; the file must not stay open (nor its folder busy).
      db?.close()
      throw err
    }
  }

  /**
   * The index file as the service keeps it, for a tool that only reads
   * while the service may run: SQLite's read-only mode, no recovery of the
   * index's journal, nothing written, closing included (so its meta goes
   * on saying what the service's own start wrote, e.g. that it is in use).
   * Rows of runs a crashed process was writing stay as they were until the
   * service's next start reads them again. Unusable (with the reason) when
   * it cannot list every run now: missing, of another version, damaged, or
   * still being built.
   */
  static openReadOnly (path: string): { index: SqliteRunIndex } | { unusable: string } {
    if (!existsSync(path)) return { unusable: 'there is no index file' }
    let db: Database.Database | undefined
    try {
      db = new Database(path, { readonly: true, fileMustExist: true })
      db.pragma('busy_timeout = 5000')
      let unusable: string | null = null
      if (!isReadableVersion(db.pragma('user_version', { simple: true }) as number)) unusable = 'the index file is of another version'
      else if (getMeta(db, 'damaged') === '1') unusable = 'the index file is damaged'
      else if (getMeta(db, 'built') !== '1') unusable = 'the index is still being built'
      if (unusable !== null) {
        db.close()
        return { unusable }
      }
      return { index: new SqliteRunIndex(db, path, null, getMeta(db, 'clean_stop') === '1', true) }
    } catch (err) {
      db?.close()
      if (isDamage(err)) return { unusable: 'the index file is damaged' }
      throw err
    }
  }

  /** Removes the index file and its companions (WAL, shared memory); closed, it is built again at the next start. */
  static async remove (path: string): Promise<void> {
    await removeDatabaseFiles(path)
  }

  get building (): boolean {
    return this.rebuilt !== null
  }

  async begin (runId: string): Promise<void> {
    try {
      this.#statement('INSERT OR IGNORE INTO journal (run_id) VALUES (?)').run(runId.toLowerCase())
    } catch {
      // The write goes ahead: a stored run never fails for its index. The next start reads every run instead.
      this.#journalMissed = true
    }
  }

  async upsert (metadata: RunMetadata, archive: string | null = null): Promise<void> {
    this.#change(metadata.run_id.toLowerCase(), { metadata, archive })
  }

  async archiveOf (runId: string): Promise<string | null> {
    return this.#archiveOf(runId.toLowerCase())
  }

  async remove (runId: string): Promise<void> {
    const id = runId.toLowerCase()
    this.#catchUp.noteRemoved(id)
    this.#change(id, null)
  }

  /**
   * Reads again the runs whose write a stopped process had begun (O(those
   * runs), not O(runs)): each is indexed as stored now, or removed when gone.
   * Run it before the store takes writes.
   */
  async recoverJournal (source: RunSource): Promise<{ journaled: number, skipped: ReconcileReport['skipped'] }> {
    const ids = this.#statement('SELECT run_id FROM journal').pluck().all() as string[]
    const skipped: ReconcileReport['skipped'] = []
    const read = await Promise.allSettled(ids.map(async (id) => await source.readMetadata(id)))
    this.#db.transaction(() => {
      read.forEach((result, i) => {
        const id = ids[i]!
        // Found in the store: live, whatever archive the row named (an archiving cut off before the run left).
        if (result.status === 'fulfilled') this.#write(result.value, null, false)
        else if ((result.reason as { code?: string }).code === 'RUN_NOT_FOUND') this.#delete(id)
        else skipped.push({ run_id: id, reason: describe(result.reason) })
        this.#statement('DELETE FROM journal WHERE run_id = ?').run(id)
      })
    })()
    return { journaled: ids.length, skipped }
  }

  /** One process per index file (the store lock): what it left running are the running runs created before this start. */
  async abandonedRuns (startedAt: Date): Promise<string[]> {
    const runIds: string[] = []
    let cursor: string | undefined
    do {
      const page = await this.list({ status: 'running', to: startedAt.toISOString() }, { limit: MAX_LIST_LIMIT, cursor })
      for (const entry of page.runs) if (Date.parse(entry.timestamp) < startedAt.getTime()) runIds.push(entry.run_id)
      cursor = page.next_cursor ?? undefined
    } while (cursor !== undefined)
    return runIds
  }

  async catchUp (source: RunSource, options: { onProgress?: (progress: IndexProgress) => void } = {}): Promise<ReconcileReport> {
    return await this.#catchUp.run(async () => await catchUpIndex(this, source), options.onProgress)
  }

  progress (): IndexProgress {
    return this.#catchUp.progress()
  }

  async list (filters: RunListFilters = {}, paging: RunListPaging = {}): Promise<RunListResult> {
    this.#retryUnwritten()
    const query = listingQuery(filters, paging)
    let rows: EntryRow[]
    let counted: { total: number, exact: boolean }
    try {
      rows = this.#statement(query.page).all(query.params) as EntryRow[]
      // A first page that holds every match is the count: a second walk over the same rows would cost as much again.
      counted = paging.cursor === undefined && rows.length <= query.limit
        ? { total: rows.length, exact: true }
        : this.#total(filters, query.count, query.params)
    } catch (err) {
      if (!isDamage(err)) throw err
      this.markDamaged()
      throw new IndexDamagedError()
    }
    const page = rows.slice(0, query.limit)
    const { total, exact } = counted
    return {
      runs: page.map(toEntry),
      next_cursor: rows.length > query.limit ? encodeCursor(query.order, page.at(-1)!.seq) : null,
      total,
      total_exact: exact
    }
  }

  async stats (): Promise<RunIndexStats> {
    const byStatus = this.#byStatus('exclude')
    const pages = this.#db.pragma('page_count', { simple: true }) as number
    const pageSize = this.#db.pragma('page_size', { simple: true }) as number
    return { runs: Object.values(byStatus).reduce((sum, n) => sum + n, 0), byStatus, sizeBytes: pages * pageSize }
  }

  async isOpen (): Promise<boolean> {
    try {
      return this.#ping.get() === 1
    } catch {
      return false
    }
  }

  async close (): Promise<void> {
    if (!this.#db.open) return
    if (this.readOnly) {
      this.#db.close()
      return
    }
    await this.#catchUp.stop()
    try {
      this.#retryUnwritten()
      if (this.#unwritten.size > 0 || this.#journalMissed) setMeta(this.#db, 'full_scan', '1')
      setMeta(this.#db, 'clean_stop', '1')
      this.#db.pragma('optimize')
      this.#db.pragma('wal_checkpoint(TRUNCATE)')
    } catch {
      // The changes it missed stay missed until a `runstore reindex`; the run folders are right.
    } finally {
      this.#db.close()
    }
  }

  /**
   * After a stop that was not clean: SQLite's integrity check of the file,
   * in a worker thread (it reads the whole file). 'ok', or what is wrong;
   * then the next start builds the index again.
   */
  async checkIntegrity (): Promise<string> {
    if (this.path === null) return 'ok'
    const result = await checkIndexFile(this.path)
    if (result !== 'ok') this.markDamaged()
    return result
  }

  /** The next start builds the index again (when that can still be written down; else `runstore reindex`). */
  markDamaged (): void {
    try {
      setMeta(this.#db, 'damaged', '1')
    } catch {
      // Too damaged to take even that: the open at the next start finds it so.
    }
  }

  // ---- for the catch-up (catch-up.ts) ----

  get stopped (): boolean {
    return this.#catchUp.stopped
  }

  get fullScanNeeded (): boolean {
    return getMeta(this.#db, 'full_scan') === '1'
  }

  /** Where an interrupted build stopped: it had indexed every stored run whose id sorts after this one. */
  get buildResumesBelow (): string | null {
    return getMeta(this.#db, 'build_below')
  }

  setProgress (progress: Partial<Omit<IndexProgress, 'indexed_runs'>>): void {
    this.#catchUp.setProgress(progress)
  }

  /** Indexed live run ids below `below` (all when null), newest first, a chunk at a time. */
  indexedRunIds (below: string | null, limit: number): string[] {
    return (below === null
      ? this.#statement('SELECT run_id FROM runs WHERE archived = 0 ORDER BY run_id DESC LIMIT ?').pluck().all(limit)
      : this.#statement('SELECT run_id FROM runs WHERE archived = 0 AND run_id < ? ORDER BY run_id DESC LIMIT ?').pluck().all(below, limit)) as string[]
  }

  /**
   * Writes what a catch-up read from the store, in one transaction, unless
   * a live change came first (a newer updated_at, or a removal meanwhile).
   * Returns how each entry went.
   */
  applyStored (entries: StoredEntry[], marks: { buildBelow?: string, built?: boolean, fullScanDone?: boolean } = {}): StoredResults {
    return this.#db.transaction(() => {
      const results = entries.map((entry) => {
        if (this.#catchUp.removedMeanwhile(entry.run_id.toLowerCase())) return 'same' as const
        if (entry.metadata === null) {
          this.#delete(entry.run_id.toLowerCase())
          return 'updated' as const
        }
        try {
          return this.#write(entry.metadata, null, true)
        } catch (err) {
          return err instanceof Error ? err : new Error(String(err))
        }
      })
      if (marks.buildBelow !== undefined) setMeta(this.#db, 'build_below', marks.buildBelow)
      if (marks.built === true) {
        setMeta(this.#db, 'built', '1')
        this.#db.prepare("DELETE FROM meta WHERE key IN ('build_below', 'build_reason')").run()
      }
      if (marks.fullScanDone === true) this.#db.prepare("DELETE FROM meta WHERE key = 'full_scan'").run()
      return results
    })()
  }

  /** The archived runs the index lists, with their archive. */
  archivedRuns (): Map<string, string> {
    const rows = this.#statement('SELECT run_id, archive FROM runs WHERE archived = 1').all() as Array<{ run_id: string, archive: string }>
    return new Map(rows.map((row) => [row.run_id, row.archive]))
  }

  /**
   * Writes archived runs a catch-up read from the archives, and removes the
   * rows of `gone` (run id and the archive the row named then), unless a
   * live change came first: a row that is live now (restored, or never
   * archived) stays as it is, and so does a row archived anew elsewhere.
   */
  applyArchived (entries: Array<{ metadata: RunMetadata, archive: string }>, gone: Array<{ run_id: string, archive: string }> = []): number {
    return this.#db.transaction(() => {
      let written = 0
      for (const { metadata, archive } of entries) {
        const id = metadata.run_id.toLowerCase()
        const row = this.#statement('SELECT archived FROM runs WHERE run_id = ?').get(id) as { archived: number } | undefined
        if (this.#catchUp.removedMeanwhile(id) || row?.archived === 0) continue
        this.#write(metadata, archive, false)
        written++
      }
      for (const { run_id: id, archive } of gone) {
        if (this.#archiveOf(id) === archive) this.#delete(id)
      }
      return written
    })()
  }

  // ---- inside ----

  #total (filters: RunListFilters, countSql: string, params: Record<string, string | number>): { total: number, exact: boolean } {
    if (countedByStatus(filters)) {
      const counts = this.#byStatus(filters.archived ?? 'exclude')
      const total = filters.status === undefined ? Object.values(counts).reduce((sum, n) => sum + n, 0) : counts[filters.status] ?? 0
      return { total, exact: true }
    }
    const counted = this.#statement(countSql).pluck().get(params) as number
    return counted > COUNT_LIMIT ? { total: COUNT_LIMIT, exact: false } : { total: counted, exact: true }
  }

  #byStatus (archived: 'exclude' | 'include' | 'only'): Record<string, number> {
    const condition = archived === 'include' ? '' : ` WHERE archived = ${archived === 'only' ? 1 : 0}`
    const rows = this.#statement(`SELECT status, sum(runs) AS runs FROM run_counts${condition} GROUP BY status HAVING sum(runs) > 0`).all() as Array<{ status: string, runs: number }>
    return Object.fromEntries(rows.map((row) => [row.status, row.runs]))
  }

  #count (): number {
    return this.#statement('SELECT coalesce(sum(runs), 0) FROM run_counts').pluck().get() as number
  }

  #archiveOf (runId: string): string | null {
    return (this.#statement('SELECT archive FROM runs WHERE run_id = ?').pluck().get(runId) as string | null | undefined) ?? null
  }

  /** Writes a run's new state (null: gone), after what could not be written before; kept for later when it fails. */
  #change (runId: string, change: { metadata: RunMetadata, archive: string | null } | null): void {
    this.#unwritten.delete(runId) // superseded by this change
    this.#retryUnwritten()
    try {
      this.#apply(runId, change)
    } catch (err) {
      this.#unwritten.set(runId, change)
      throw err
    }
  }

  /** Writes the changes that failed before; each that fails again stays for the next try. */
  #retryUnwritten (): void {
    for (const [runId, change] of this.#unwritten) {
      try {
        this.#apply(runId, change)
        this.#unwritten.delete(runId)
      } catch {
        // still no room (or a change that can never be written): the next start reads every run
      }
    }
  }

  #apply (runId: string, change: { metadata: RunMetadata, archive: string | null } | null): void {
    if (change === null) this.#removeTransaction(runId)
    else this.#upsertTransaction(change.metadata, change.archive)
  }

  #statement (sql: string): Database.Statement {
    let statement = this.#statements.get(sql)
    if (statement === undefined) {
      statement = this.#db.prepare(sql)
      this.#statements.set(sql, statement)
    }
    return statement
  }

  /** Writes the run's row, facets and texts and clears its journal mark; with onlyIfNewer, an entry as new or newer is kept. */
  #write (metadata: RunMetadata, archive: string | null, onlyIfNewer: boolean): 'added' | 'updated' | 'same' {
    const runId = metadata.run_id.toLowerCase()
    const known = this.#statement('SELECT seq, updated_at, archive FROM runs WHERE run_id = ?').get(runId) as { seq: number, updated_at: string, archive: string | null } | undefined
    // A run that came back from its archive unchanged is still news: it is live now.
    if (onlyIfNewer && known !== undefined && known.updated_at >= metadata.updated_at && known.archive === archive) return 'same'
    const entry = indexEntry(metadata, archive)
    const row = { ...entry, media_types: JSON.stringify(entry.media_types), backends: JSON.stringify(entry.backends), archived: archive === null ? 0 : 1 }
    let seq = known?.seq
    if (seq === undefined) {
      seq = preferredSortKey(runId, metadata.timestamp)
      // Another run has this key (same millisecond and counter): the next free one keeps both in order enough.
      while (this.#statement('SELECT 1 FROM runs WHERE seq = ?').get(seq) !== undefined) seq++
      this.#statement(`INSERT INTO runs (seq, run_id, timestamp, updated_at, status, schema, execution_mode, user_id, input_text, transformed_text, output_count, media_types, backends, archived, archive)
        VALUES (@seq, @run_id, @timestamp, @updated_at, @status, @schema, @execution_mode, @user_id, @input_text, @transformed_text, @output_count, @media_types, @backends, @archived, @archive)`).run({ ...row, seq })
    } else {
      this.#statement(`UPDATE runs SET timestamp = @timestamp, updated_at = @updated_at, status = @status, schema = @schema,
        execution_mode = @execution_mode, user_id = @user_id, input_text = @input_text, transformed_text = @transformed_text,
        output_count = @output_count, media_types = @media_types, backends = @backends, archived = @archived, archive = @archive WHERE seq = @seq`).run({ ...row, seq })
      this.#statement('DELETE FROM run_facets WHERE seq = ?').run(seq)
      this.#statement('DELETE FROM run_texts WHERE rowid = ?').run(seq)
    }
    const insertFacet = this.#statement('INSERT INTO run_facets (facet, seq) VALUES (?, ?)')
    for (const facet of facetsOf(metadata)) insertFacet.run(facet, seq)
    this.#statement('INSERT INTO run_texts (rowid, input_text, transformed_text) VALUES (?, ?, ?)')
      .run(seq, fold(metadata.input_text), metadata.transformed_text == null ? null : fold(metadata.transformed_text))
    this.#statement('DELETE FROM journal WHERE run_id = ?').run(runId)
    return known === undefined ? 'added' : 'updated'
  }

  #delete (runId: string): void {
    const seq = this.#statement('SELECT seq FROM runs WHERE run_id = ?').pluck().get(runId) as number | undefined
    if (seq !== undefined) {
      this.#statement('DELETE FROM run_texts WHERE rowid = ?').run(seq)
      this.#statement('DELETE FROM run_facets WHERE seq = ?').run(seq)
      this.#statement('DELETE FROM runs WHERE seq = ?').run(seq)
    }
    this.#statement('DELETE FROM journal WHERE run_id = ?').run(runId)
  }
}

function toEntry ({ seq, ...row }: EntryRow): RunIndexEntry {
  return { ...row, media_types: JSON.parse(row.media_types) as MediaType[], backends: JSON.parse(row.backends) as string[] }
}
