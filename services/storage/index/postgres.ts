import pg from 'pg'
import type { RunMetadata } from '../../../schemas/run.js'
import { LOCK_SPACE } from '../../postgres/lock-keys.js'
import { migrate } from '../../postgres/migrate.js'
import { KeyedLock } from '../keyed-lock.js'
import { CatchUp, catchUpIndex, describe, type CatchUpTarget, type StoredEntry, type StoredResults } from './catch-up.js'
import { pgText, postgresListingQuery } from './postgres-listing.js'
import {
  COUNT_LIMIT, encodeCursor, preferredSortKey,
  type IndexProgress, type ReconcileReport, type RunIndex, type RunIndexEntry, type RunIndexStats, type RunListFilters, type RunListPaging, type RunListResult, type RunSource
} from './run-index.js'
import { countedByStatus, facetsOf, fold, indexEntry } from './index-entry.js'

export interface PostgresRunIndexOptions {
  /** postgres://user:password@host:port/database */
  url: string
  /** connections this process keeps at most (one more is held for the session lock) */
  poolSize: number
}

const SESSION_LOCK = LOCK_SPACE.indexSession
const ID_KEY = '($2::bigint % 2147483647)::int'

const TABLES = ['runs', 'run_counts', 'run_journal', 'run_index_meta', 'run_index_sessions']
const DEADLOCK_DETECTED = '40P01'
const CHANGE_ATTEMPTS = 5

type Client = pg.PoolClient

/**
 * The run index in PostgreSQL (DATABASE_URL), for several instances over
 * one store: the same listing, journal and catch-up as the SQLite index,
 * shared by every instance. Its tables come from the SQL migrations; it is
 * derived data like the SQLite file, rebuilt from the store by catchUp when
 * its build has not finished. Writes of one run are serialised in this
 * process (so they land in the order of the store's change events); across
 * instances a row lock orders them and an entry never goes back to an older
 * updated_at.
 */
export class PostgresRunIndex implements RunIndex, CatchUpTarget {
  readonly description: string
  readonly rebuilt: ReconcileReport['rebuilt']
  readonly lastStopWasClean: boolean
  readonly #pool: pg.Pool
  /** holds this index's session lock; released (the connection ended) at close or when the process dies */
  readonly #session: Client
  readonly #sessionId: string
  readonly #perRun = new KeyedLock()
  /** live changes under way: a read (listing, count, archive lookup) waits for them, so that what a request wrote, the next one sees */
  readonly #pending = new Set<Promise<unknown>>()
  #meta: Map<string, string>
  #indexed: number
  readonly #catchUp: CatchUp
  #closed = false
  /** a change could not be written: the next start reads every run */
  #missedChange = false

  private constructor (pool: pg.Pool, session: Client, sessionId: string, state: { url: string, meta: Map<string, string>, indexed: number, lastStopWasClean: boolean }) {
    this.#pool = pool
    this.#session = session
    this.#sessionId = sessionId
    this.#meta = state.meta
    this.#indexed = state.indexed
    this.lastStopWasClean = state.lastStopWasClean
    this.rebuilt = this.building ? state.meta.get('build_reason') as ReconcileReport['rebuilt'] : null
    const url = new URL(state.url)
    this.description = `postgres:${url.host}${url.pathname}`
    this.#catchUp = new CatchUp(this.building, () => this.#indexed)
  }

  /**
   * Connects, applies the migrations the database lacks and registers this
   * index as open. Then recoverJournal before the store takes writes, and
   * catchUp in the background.
   */
  static async open (options: PostgresRunIndexOptions): Promise<PostgresRunIndex> {
    const pool = new pg.Pool({ connectionString: options.url, max: options.poolSize })
    // A connection the server ended (a restart) fails its query, or is dropped by the pool when idle; the next query connects again.
    pool.on('error', () => {})
    pool.on('connect', (client) => { client.on('error', () => {}) })
    let session: Client | undefined
    try {
      const applied = await migrate(pool)
      session = await pool.connect()
      const crashed = await endStoppedSessions(session)
      // Row and lock in one transaction: no other instance sees the row before its lock is held.
      await session.query('BEGIN')
      const sessionId = (await session.query<{ id: string }>('INSERT INTO run_index_sessions DEFAULT VALUES RETURNING id')).rows[0]!.id
      await session.query(`SELECT pg_advisory_lock($1, ${ID_KEY})`, [SESSION_LOCK, sessionId])
      await session.query('COMMIT')
      const meta = await readMeta(pool)
      const indexed = await countRuns(pool)
      return new PostgresRunIndex(pool, session, sessionId, { url: options.url, meta, indexed, lastStopWasClean: !crashed && !applied.includes('001') })
    } catch (err) {
      session?.release(true)
      await pool.end()
      throw err
    }
  }

  /**
   * Empties the index for `runstore reindex`: the rows, their counts and the
   * journal go in one transaction, and the next catchUp builds it again from
   * the store (instances still serving list what is built so far and say so).
   */
  static async clear (options: PostgresRunIndexOptions): Promise<void> {
    const pool = new pg.Pool({ connectionString: options.url, max: 1 })
    try {
      await migrate(pool)
      const client = await pool.connect()
      try {
        await client.query('BEGIN')
        await client.query('TRUNCATE runs, run_counts, run_journal')
        await client.query("DELETE FROM run_index_meta WHERE key IN ('build_below', 'full_scan')")
        await client.query("INSERT INTO run_index_meta (key, value) VALUES ('built', '0'), ('build_reason', 'missing') ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value")
        await client.query('COMMIT')
      } catch (err) {
        await client.query('ROLLBACK')
        throw err
      } finally {
        client.release()
      }
    } finally {
      await pool.end()
    }
  }

  get building (): boolean {
    return this.#meta.get('built') !== '1'
  }

  async begin (runId: string): Promise<void> {
    const id = runId.toLowerCase()
    try {
      // Behind this run's index writes already queued: each clears the run's mark, so one landing after this
      // insert would clear the mark of a write it does not contain, and a kill before that write's own upsert
      // would leave its row stale with nothing to say so.
      await this.#perRun.run(id, async () => {
        await this.#pool.query('INSERT INTO run_journal (run_id, session) VALUES ($1, $2) ON CONFLICT (run_id) DO UPDATE SET session = excluded.session', [id, this.#sessionId])
      })
    } catch {
      // The write goes ahead: a stored run never fails for its index. The next start reads every run instead.
      await this.#missed()
    }
  }

  async upsert (metadata: RunMetadata, archive: string | null = null): Promise<void> {
    const runId = metadata.run_id.toLowerCase()
    await this.#change(runId, async (client) => { await this.#write(client, metadata, archive, false, this.#sessionId) })
  }

  async remove (runId: string): Promise<void> {
    const id = runId.toLowerCase()
    this.#catchUp.noteRemoved(id)
    await this.#change(id, async (client) => { await this.#delete(client, id) })
  }

  /**
   * Reads again the runs whose write a stopped process had begun (not the
   * marks of instances still open: their writes are under way); run it
   * before the store takes writes.
   */
  async recoverJournal (source: RunSource): Promise<{ journaled: number, skipped: ReconcileReport['skipped'] }> {
    const marks = (await this.#pool.query<{ run_id: string, session: string | null }>(`SELECT run_id, session FROM run_journal
      WHERE session IS NULL OR session NOT IN (SELECT id FROM run_index_sessions)`)).rows
    const ids = marks.map((mark) => mark.run_id)
    const skipped: ReconcileReport['skipped'] = []
    const read = await Promise.allSettled(ids.map(async (id) => await source.readMetadata(id)))
    await this.#transaction(async (client) => {
      for (const [i, result] of read.entries()) {
        const id = ids[i]!
        // Still the stopped session's: a run it left running is found as one of its.
        if (result.status === 'fulfilled') await this.#write(client, result.value, undefined, false, marks[i]!.session)
        else if ((result.reason as { code?: string }).code === 'RUN_NOT_FOUND') await this.#delete(client, id)
        else skipped.push({ run_id: id, reason: describe(result.reason) })
        await client.query('DELETE FROM run_journal WHERE run_id = $1', [id])
      }
    })
    this.#indexed = await countRuns(this.#pool)
    return { journaled: ids.length, skipped }
  }

  /**
   * Ends the sessions of instances that stopped without closing, reads
   * again what they had begun to write, and names the runs they left
   * running: rows last written by a session that is gone, or by none (a
   * catch-up wrote them) when created before every open instance started.
   * A run with a write under way in an open instance is never named.
   */
  async abandonedRuns (_startedAt: Date, source: RunSource): Promise<string[]> {
    await endStoppedSessions(this.#session, this.#sessionId)
    await this.recoverJournal(source)
    const rows = await this.#pool.query<{ run_id: string }>(`SELECT run_id FROM runs r
      WHERE status = 'running' AND NOT archived
        AND CASE WHEN session IS NULL
          THEN (entry::jsonb ->> 'timestamp')::timestamptz < (SELECT min(started_at) FROM run_index_sessions)
          ELSE session NOT IN (SELECT id FROM run_index_sessions) END
        AND NOT EXISTS (SELECT 1 FROM run_journal j WHERE j.run_id = r.run_id)
      ORDER BY seq`)
    return rows.rows.map((row) => row.run_id)
  }

  async catchUp (source: RunSource, options: { onProgress?: (progress: IndexProgress) => void } = {}): Promise<ReconcileReport> {
    return await this.#catchUp.run(async () => {
      // Another instance may have finished the build meanwhile.
      this.#meta = await readMeta(this.#pool)
      return await catchUpIndex(this, source)
    }, options.onProgress)
  }

  progress (): IndexProgress {
    return this.#catchUp.progress()
  }

  async list (filters: RunListFilters = {}, paging: RunListPaging = {}): Promise<RunListResult> {
    const query = postgresListingQuery(filters, paging)
    await this.#settled()
    const [rows, counted] = await Promise.all([
      this.#pool.query<{ seq: string, entry: string }>(query.page, query.params),
      this.#total(filters, query.count, query.params.slice(0, query.countParams))
    ])
    const page = rows.rows.slice(0, query.limit)
    return {
      runs: page.map((row) => JSON.parse(row.entry) as RunIndexEntry),
      next_cursor: rows.rows.length > query.limit ? encodeCursor(query.order, Number(page.at(-1)!.seq)) : null,
      total: counted.total,
      total_exact: counted.exact
    }
  }

  async stats (): Promise<RunIndexStats> {
    await this.#settled()
    const byStatus = await this.#byStatus('exclude')
    const size = await this.#pool.query<{ bytes: string }>('SELECT sum(pg_total_relation_size(t::regclass))::bigint AS bytes FROM unnest($1::text[]) t', [TABLES])
    return { runs: Object.values(byStatus).reduce((sum, n) => sum + n, 0), byStatus, sizeBytes: Number(size.rows[0]!.bytes) }
  }

  async isOpen (): Promise<boolean> {
    if (this.#closed) return false
    try {
      return (await this.#pool.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one === 1
    } catch {
      return false
    }
  }

  async close (): Promise<void> {
    if (this.#closed) return
    await this.#catchUp.stop()
    this.#closed = true
    try {
      if (this.#missedChange) await this.#setMeta(this.#pool, 'full_scan', '1')
      await this.#session.query('DELETE FROM run_index_sessions WHERE id = $1', [this.#sessionId])
    } catch {
      // The database is gone or was emptied: the next start finds out what is missing.
    } finally {
      // Ending the session's connection frees its lock.
      this.#session.release(true)
      await this.#pool.end()
    }
  }

  // ---- for the catch-up (catch-up.ts) ----

  get stopped (): boolean {
    return this.#catchUp.stopped
  }

  get fullScanNeeded (): boolean {
    return this.#meta.get('full_scan') === '1'
  }

  get buildResumesBelow (): string | null {
    return this.#meta.get('build_below') ?? null
  }

  setProgress (progress: Partial<Omit<IndexProgress, 'indexed_runs'>>): void {
    this.#catchUp.setProgress(progress)
  }

  async indexedRunIds (below: string | null, limit: number): Promise<string[]> {
    const result = below === null
      ? await this.#pool.query<{ run_id: string }>('SELECT run_id FROM runs WHERE NOT archived ORDER BY run_id DESC LIMIT $1', [limit])
      : await this.#pool.query<{ run_id: string }>('SELECT run_id FROM runs WHERE NOT archived AND run_id < $2 ORDER BY run_id DESC LIMIT $1', [limit, below])
    return result.rows.map((row) => row.run_id)
  }

  /** Writes what a catch-up read from the store, in one transaction, unless a live change came first. */
  async applyStored (entries: StoredEntry[], marks: { buildBelow?: string, built?: boolean, fullScanDone?: boolean } = {}): Promise<StoredResults> {
    const results = await this.#transaction(async (client) => {
      const results: StoredResults = []
      for (const entry of entries) {
        const runId = entry.run_id.toLowerCase()
        if (this.#catchUp.removedMeanwhile(runId)) {
          results.push('same')
        } else if (entry.metadata === null) {
          await this.#delete(client, runId)
          results.push('updated')
        } else {
          // One entry that cannot be written must not undo the batch.
          await client.query('SAVEPOINT entry')
          try {
            results.push(await this.#write(client, entry.metadata, undefined, true))
            await client.query('RELEASE SAVEPOINT entry')
          } catch (err) {
            await client.query('ROLLBACK TO SAVEPOINT entry')
            results.push(err instanceof Error ? err : new Error(String(err)))
          }
        }
      }
      if (marks.buildBelow !== undefined) await this.#setMeta(client, 'build_below', marks.buildBelow)
      if (marks.built === true) {
        await this.#setMeta(client, 'built', '1')
        await client.query("DELETE FROM run_index_meta WHERE key IN ('build_below', 'build_reason')")
      }
      if (marks.fullScanDone === true) await client.query("DELETE FROM run_index_meta WHERE key = 'full_scan'")
      return results
    })
    this.#meta = await readMeta(this.#pool)
    this.#indexed = await countRuns(this.#pool)
    return results
  }

  // ---- inside ----

  async #total (filters: RunListFilters, countSql: string, params: unknown[]): Promise<{ total: number, exact: boolean }> {
    if (countedByStatus(filters)) {
      const counts = await this.#byStatus(filters.archived ?? 'exclude')
      const total = filters.status === undefined ? Object.values(counts).reduce((sum, n) => sum + n, 0) : counts[filters.status] ?? 0
      return { total, exact: true }
    }
    const counted = (await this.#pool.query<{ n: number }>(countSql, params)).rows[0]!.n
    return counted > COUNT_LIMIT ? { total: COUNT_LIMIT, exact: false } : { total: counted, exact: true }
  }

  async #byStatus (archived: 'exclude' | 'include' | 'only'): Promise<Record<string, number>> {
    const condition = archived === 'include' ? '' : ` WHERE ${archived === 'only' ? '' : 'NOT '}archived`
    const rows = (await this.#pool.query<{ status: string, runs: string }>(`SELECT status, sum(runs) AS runs FROM run_counts${condition} GROUP BY status HAVING sum(runs) > 0`)).rows
    return Object.fromEntries(rows.map((row) => [row.status, Number(row.runs)]))
  }

  /** A live change of one run, after the ones before it; a failure makes the next start read every run. */
  async #change (runId: string, work: (client: Client) => Promise<void>): Promise<void> {
    // Noted before the first await: the store's change events call this without waiting, and the write must count at once.
    const change = this.#perRun.run(runId, async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          await this.#transaction(work)
          return
        } catch (err) {
          // Instances writing at once can deadlock on the shared rows (run_counts): PostgreSQL rolls one back to be run
          // again. Given up, the row would stay stale until a start reads every run.
          if ((err as { code?: string }).code === DEADLOCK_DETECTED && attempt < CHANGE_ATTEMPTS) continue
          await this.#missed()
          throw err
        }
      }
    })
    this.#pending.add(change)
    try {
      await change
    } finally {
      this.#pending.delete(change)
    }
  }

  /** Waits for the live changes begun before this call (failed ones too). */
  async #settled (): Promise<void> {
    if (this.#pending.size > 0) await Promise.allSettled([...this.#pending])
  }

  async #missed (): Promise<void> {
    this.#missedChange = true
    await this.#setMeta(this.#pool, 'full_scan', '1').catch(() => {})
  }

  async archiveOf (runId: string): Promise<string | null> {
    await this.#settled()
    const row = (await this.#pool.query<{ archive: string | null }>('SELECT archive FROM runs WHERE run_id = $1', [runId.toLowerCase()])).rows[0]
    return row?.archive ?? null
  }

  async archivedRuns (): Promise<Map<string, string>> {
    await this.#settled()
    const rows = (await this.#pool.query<{ run_id: string, archive: string }>('SELECT run_id, archive FROM runs WHERE archived')).rows
    return new Map(rows.map((row) => [row.run_id, row.archive]))
  }

  /**
   * Writes archived runs a catch-up read from the archives, and removes the
   * rows of `gone` (run id and the archive the row named then), unless a
   * live change came first: a row that is live now stays as it is, and so
   * does a row archived anew elsewhere.
   */
  async applyArchived (entries: Array<{ metadata: RunMetadata, archive: string }>, gone: Array<{ run_id: string, archive: string }> = []): Promise<number> {
    return await this.#transaction(async (client) => {
      let written = 0
      for (const { metadata, archive } of entries) {
        const id = metadata.run_id.toLowerCase()
        const row = (await client.query<{ archived: boolean }>('SELECT archived FROM runs WHERE run_id = $1 FOR UPDATE', [id])).rows[0]
        if (this.#catchUp.removedMeanwhile(id) || row?.archived === false) continue
        await this.#write(client, metadata, archive, false)
        written++
      }
      for (const { run_id: id, archive } of gone) {
        const row = (await client.query<{ archive: string | null }>('SELECT archive FROM runs WHERE run_id = $1 FOR UPDATE', [id])).rows[0]
        if (row?.archive === archive) await this.#delete(client, id)
      }
      return written
    })
  }

  async #transaction<T> (work: (client: Client) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect()
    try {
      await client.query('BEGIN')
      const result = await work(client)
      await client.query('COMMIT')
      client.release()
      return result
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {})
      client.release()
      throw err
    }
  }

  async #setMeta (db: pg.Pool | Client, key: string, value: string): Promise<void> {
    await db.query('INSERT INTO run_index_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [key, value])
  }

  /**
   * Writes the run's row and clears its journal mark. `archive` undefined
   * keeps the archive the row names; `writer` is the session of a live
   * change (null: a catch-up, which keeps the writer the row names). An entry never goes back to an older
   * updated_at (another instance may have written a newer one); with
   * onlyIfNewer (the catch-up) an entry as new is kept as well.
   */
  async #write (client: Client, metadata: RunMetadata, archive: string | null | undefined, onlyIfNewer: boolean, writer: string | null = null): Promise<'added' | 'updated' | 'same'> {
    const runId = metadata.run_id.toLowerCase()
    const known = (await client.query<{ seq: string, updated_at: string, archive: string | null }>('SELECT seq, updated_at, archive FROM runs WHERE run_id = $1 FOR UPDATE', [runId])).rows[0]
    if (known !== undefined && (known.updated_at > metadata.updated_at || (onlyIfNewer && known.updated_at === metadata.updated_at))) return 'same'
    const keptArchive = archive === undefined ? known?.archive ?? null : archive
    const entry = indexEntry(metadata, keptArchive)
    const row = [
      runId, metadata.updated_at, pgText(metadata.status), pgText(metadata.schema), entry.user_id === null ? null : pgText(entry.user_id),
      keptArchive !== null, keptArchive === null ? null : pgText(keptArchive), facetsOf(metadata).map(pgText),
      pgText(fold(metadata.input_text)), pgText(fold(metadata.transformed_text ?? '')), JSON.stringify(entry), writer
    ]
    let result: 'added' | 'updated' = 'updated'
    if (known !== undefined) {
      await client.query(`UPDATE runs SET updated_at = $2, status = $3, schema = $4, user_id = $5, archived = $6, archive = $7, facets = $8,
        input_search = $9, transformed_search = $10, entry = $11, session = COALESCE($12, session) WHERE run_id = $1`, row)
    } else {
      result = await this.#insert(client, row, preferredSortKey(runId, metadata.timestamp))
    }
    await client.query('DELETE FROM run_journal WHERE run_id = $1', [runId])
    if (result === 'added') this.#indexed++
    return result
  }

  /** Inserts at the first free sort key from `seq` on; when another instance added the run meanwhile, updates it. */
  async #insert (client: Client, row: unknown[], seq: number): Promise<'added' | 'updated'> {
    for (let key = seq; ; key++) {
      const inserted = await client.query(`INSERT INTO runs (run_id, updated_at, status, schema, user_id, archived, archive, facets, input_search, transformed_search, entry, session, seq)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING`, [...row, key])
      if (inserted.rowCount === 1) return 'added'
      const taken = await client.query('SELECT 1 FROM runs WHERE run_id = $1 FOR UPDATE', [row[0]])
      if (taken.rowCount === 1) {
        await client.query(`UPDATE runs SET updated_at = $2, status = $3, schema = $4, user_id = $5, archived = $6, archive = $7, facets = $8,
          input_search = $9, transformed_search = $10, entry = $11, session = COALESCE($12, session) WHERE run_id = $1 AND updated_at <= $2`, row)
        return 'updated'
      }
    }
  }

  async #delete (client: Client, runId: string): Promise<void> {
    const deleted = await client.query('DELETE FROM runs WHERE run_id = $1', [runId])
    if (deleted.rowCount === 1) this.#indexed--
    await client.query('DELETE FROM run_journal WHERE run_id = $1', [runId])
  }
}

/**
 * Removes the rows of indexes whose process stopped without closing them
 * (their lock is free): true when there was one, so the store is worth a
 * sweep for what an interrupted write left.
 */
async function endStoppedSessions (session: Client, own: string | null = null): Promise<boolean> {
  // Not its own: the lock is re-entrant, so trying it would succeed.
  const ids = (await session.query<{ id: string }>('SELECT id FROM run_index_sessions WHERE id <> $1', [own ?? '-1'])).rows.map((row) => row.id)
  let stopped = false
  for (const id of ids) {
    const free = (await session.query<{ free: boolean }>(`SELECT pg_try_advisory_lock($1, ${ID_KEY}) AS free`, [SESSION_LOCK, id])).rows[0]!.free
    if (!free) continue
    await session.query(`SELECT pg_advisory_unlock($1, ${ID_KEY})`, [SESSION_LOCK, id])
    await session.query('DELETE FROM run_index_sessions WHERE id = $1', [id])
    stopped = true
  }
  return stopped
}

async function readMeta (pool: pg.Pool): Promise<Map<string, string>> {
  const rows = (await pool.query<{ key: string, value: string }>('SELECT key, value FROM run_index_meta')).rows
  return new Map(rows.map((row) => [row.key, row.value]))
}

async function countRuns (pool: pg.Pool): Promise<number> {
  return Number((await pool.query<{ n: string }>('SELECT coalesce(sum(runs), 0) AS n FROM run_counts')).rows[0]!.n)
}
