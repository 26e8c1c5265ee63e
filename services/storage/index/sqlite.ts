import Database from 'better-sqlite3'
import { existsSync } from 'node:fs'
import { mkdir, rm } from 'node:fs/promises'
import { dirname } from 'node:path'
import type { MediaType } from '../../../schemas/media.js'
import type { RunMetadata } from '../../../schemas/run.js'
import {
  decodeCursor, distinctOutputs, encodeCursor, pageLimit, parseInstant,
  type ReconcileReport, type RunIndex, type RunIndexEntry, type RunIndexStats, type RunListFilters, type RunListPaging, type RunListResult, type RunSource
} from './run-index.js'

/** Bumped whenever the tables or what a row holds change: an index of another version is rebuilt. */
export const SQLITE_INDEX_VERSION = 2

export interface SqliteRunIndexOptions {
  /** the SQLite file, created (with its folder) when missing; null: in memory, for this process only */
  path: string | null
}

// The text table holds the texts case-folded, so that the instr() fallback for
// queries too short for trigrams agrees with the trigram tokenizer's own folding.
const SCHEMA = `
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE runs (
  run_id TEXT PRIMARY KEY,
  timestamp TEXT NOT NULL,
  timestamp_ms INTEGER,
  updated_at TEXT NOT NULL,
  status TEXT NOT NULL,
  schema TEXT NOT NULL,
  execution_mode TEXT NOT NULL,
  user_id TEXT,
  input_text TEXT NOT NULL,
  transformed_text TEXT,
  output_count INTEGER NOT NULL,
  media_types TEXT NOT NULL,
  backends TEXT NOT NULL
);
CREATE INDEX runs_by_user ON runs (user_id, run_id);
CREATE INDEX runs_by_schema ON runs (schema, run_id);
CREATE INDEX runs_by_status ON runs (status, run_id);
CREATE INDEX runs_by_time ON runs (timestamp_ms);
CREATE TABLE run_outputs (
  run_id TEXT NOT NULL,
  position INTEGER NOT NULL,
  media_type TEXT NOT NULL,
  backend TEXT NOT NULL,
  PRIMARY KEY (run_id, position)
) WITHOUT ROWID;
CREATE INDEX outputs_by_type ON run_outputs (media_type, run_id);
CREATE INDEX outputs_by_backend ON run_outputs (backend, run_id);
CREATE INDEX outputs_by_type_and_backend ON run_outputs (media_type, backend, run_id);
CREATE VIRTUAL TABLE run_texts USING fts5(input_text, transformed_text, tokenize = 'trigram');
`

const ENTRY_COLUMNS = 'r.run_id, r.timestamp, r.updated_at, r.status, r.schema, r.execution_mode, r.user_id, r.input_text, r.transformed_text, r.output_count, r.media_types, r.backends'
const READ_BATCH = 64

interface EntryRow extends Omit<RunIndexEntry, 'media_types' | 'backends'> {
  media_types: string
  backends: string
}

/**
 * A SQLite index of the runs for listing and filtering. It is derived data:
 * the store is the truth, so a missing, outdated or damaged index file is
 * built again from it, and each start reconciles the two. Writes are
 * synchronous inside (better-sqlite3), so they land in the order of the
 * store's change events; WAL lets listings read while a write commits.
 */
export class SqliteRunIndex implements RunIndex {
  /** null when the index is in memory */
  readonly path: string | null
  readonly description: string
  readonly #db: Database.Database
  readonly #statements = new Map<string, Database.Statement>()
  readonly #ping: Database.Statement
  readonly #upsertTransaction: (metadata: RunMetadata) => void
  readonly #removeTransaction: (runId: string) => void
  /** why this file was started afresh; null when the existing one was opened */
  readonly #rebuilt: ReconcileReport['rebuilt']
  /** false after an unclean shutdown: the next reconcile reads every run */
  readonly #cleanShutdown: boolean
  // Changes that could not be written (its disk was full), by run id, the latest of each run
  // (null: removed). Tried again before every later change and listing, so the index catches
  // up once there is room; any left at close mean the next start reads every run again.
  readonly #unwritten = new Map<string, RunMetadata | null>()
  // Only an index that caught up with the store may be trusted by the next start.
  #reconciled = false

  private constructor (db: Database.Database, path: string | null, rebuilt: ReconcileReport['rebuilt'], cleanShutdown: boolean) {
    this.#db = db
    this.path = path
    this.description = path === null ? 'sqlite in memory' : `sqlite:${path}`
    this.#rebuilt = rebuilt
    this.#cleanShutdown = cleanShutdown
    this.#ping = db.prepare('SELECT 1').pluck()
    this.#upsertTransaction = db.transaction((metadata: RunMetadata) => { this.#write(metadata) })
    this.#removeTransaction = db.transaction((runId: string) => { this.#delete(runId) })
  }

  /**
   * Opens the index at options.path, starting it afresh when it is missing,
   * of another version or corrupt. Reconcile it with the store before the
   * store takes writes; afterwards keep it current with upsert and remove.
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
      }
      const database = db!
      database.pragma('synchronous = NORMAL')
      const cleanShutdown = rebuilt === null && database.prepare("SELECT value FROM meta WHERE key = 'clean_shutdown'").pluck().get() === '1'
      // Durably "in use" before anything else is written: a crash from here on means a full scan at the next start.
      setMeta(database, 'clean_shutdown', '0')
      database.pragma('wal_checkpoint(TRUNCATE)')
      return new SqliteRunIndex(database, path, rebuilt, cleanShutdown)
    } catch (err) {
      // A disk that takes no writes fails here; the file must not stay open (nor its folder busy).
      db?.close()
      throw err
    }
  }

  /** Removes the index file and its companions (WAL, shared memory); closed, it is built again at the next start. */
  static async remove (path: string): Promise<void> {
    await removeDatabaseFiles(path)
  }

  async upsert (metadata: RunMetadata): Promise<void> {
    this.#change(metadata.run_id.toLowerCase(), metadata)
  }

  async remove (runId: string): Promise<void> {
    this.#change(runId.toLowerCase(), null)
  }

  async list (filters: RunListFilters = {}, paging: RunListPaging = {}): Promise<RunListResult> {
    this.#catchUp()
    const limit = pageLimit(paging)
    const where: string[] = []
    const params: Record<string, string | number> = { limit: limit + 1 }
    for (const column of ['user_id', 'schema', 'status'] as const) {
      const value = filters[column]
      if (value === undefined) continue
      where.push(`r.${column} = @${column}`)
      params[column] = value
    }
    if (filters.media_type !== undefined || filters.backend !== undefined) {
      const output: string[] = []
      if (filters.media_type !== undefined) { output.push('o.media_type = @media_type'); params.media_type = filters.media_type }
      if (filters.backend !== undefined) { output.push('o.backend = @backend'); params.backend = filters.backend }
      // IN, not a correlated EXISTS: the matching run ids come from one index range, already in run id order.
      where.push(`r.run_id IN (SELECT o.run_id FROM run_outputs o WHERE ${output.join(' AND ')})`)
    }
    if (filters.from !== undefined) { where.push('r.timestamp_ms >= @from'); params.from = parseInstant('from', filters.from) }
    if (filters.to !== undefined) { where.push('r.timestamp_ms < @to'); params.to = parseInstant('to', filters.to) }
    if (filters.q !== undefined) {
      const needle = fold(filters.q)
      // FTS5 reads its query as a C string: a NUL would end it inside the quotes (a syntax error), so such a needle is scanned for.
      if (Array.from(needle).length >= 3 && !needle.includes('\0')) {
        // A quoted phrase of trigrams is a substring match; "" is how a quote is written inside one.
        where.push('r.rowid IN (SELECT rowid FROM run_texts WHERE run_texts MATCH @match)')
        params.match = `"${needle.replaceAll('"', '""')}"`
      } else {
        // Trigrams cannot find one or two characters; a scan of the folded texts can (instr compares bytes, NULs too).
        where.push('r.rowid IN (SELECT rowid FROM run_texts WHERE instr(input_text, @needle) > 0 OR instr(transformed_text, @needle) > 0)')
        params.needle = needle
      }
    }
    if (paging.cursor !== undefined) { where.push('r.run_id < @before'); params.before = decodeCursor(paging.cursor) }

    const sql = `SELECT ${ENTRY_COLUMNS} FROM runs r${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY r.run_id DESC LIMIT @limit`
    const rows = this.#statement(sql).all(params) as EntryRow[]
    const page = rows.slice(0, limit).map(toEntry)
    return { runs: page, next_cursor: rows.length > limit ? encodeCursor(page.at(-1)!.run_id) : null }
  }

  async stats (): Promise<RunIndexStats> {
    // Counted from runs_by_status alone (a covering index, no table rows read): about 5 ms per 100,000 runs,
    // measured on the development VM; a scrape every few seconds costs nothing worth keeping counters for.
    const rows = this.#statement('SELECT status, count(*) AS runs FROM runs GROUP BY status').all() as Array<{ status: string, runs: number }>
    const byStatus = Object.fromEntries(rows.map((row) => [row.status, row.runs]))
    const pages = this.#db.pragma('page_count', { simple: true }) as number
    const pageSize = this.#db.pragma('page_size', { simple: true }) as number
    return { runs: rows.reduce((sum, row) => sum + row.runs, 0), byStatus, sizeBytes: pages * pageSize }
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
    try {
      if (this.#reconciled && this.#unwritten.size === 0) setMeta(this.#db, 'clean_shutdown', '1')
      this.#db.pragma('optimize')
      this.#db.pragma('wal_checkpoint(TRUNCATE)')
    } catch {
      // Without the flag the next start reads every run again: slower, never wrong.
    } finally {
      this.#db.close()
    }
  }

  async reconcile (source: RunSource): Promise<ReconcileReport> {
    const report: ReconcileReport = { rebuilt: this.#rebuilt, fullScan: !this.#cleanShutdown, added: 0, updated: 0, removed: 0, skipped: [] }
    const indexed = new Map((this.#db.prepare('SELECT run_id, updated_at FROM runs').all() as Array<{ run_id: string, updated_at: string }>)
      .map((row) => [row.run_id, row.updated_at]))
    const inStore = await source.listRunIds()
    const present = new Set(inStore.map((id) => id.toLowerCase()))
    const gone = [...indexed.keys()].filter((id) => !present.has(id))
    this.#db.transaction(() => { for (const id of gone) this.#delete(id) })()
    report.removed = gone.length

    const toRead = report.fullScan ? inStore : inStore.filter((id) => !indexed.has(id.toLowerCase()))
    for (let start = 0; start < toRead.length; start += READ_BATCH) {
      const batch = toRead.slice(start, start + READ_BATCH)
      const read = await Promise.allSettled(batch.map(async (id) => await source.getMetadata(id)))
      this.#db.transaction(() => {
        read.forEach((result, i) => {
          const runId = batch[i]!
          if (result.status === 'rejected') {
            report.skipped.push({ run_id: runId, reason: describe(result.reason) })
            return
          }
          const metadata = result.value
          if (typeof metadata.run_id !== 'string' || metadata.run_id.toLowerCase() !== runId.toLowerCase()) {
            report.skipped.push({ run_id: runId, reason: 'metadata.json names another run' })
            return
          }
          const known = indexed.get(metadata.run_id.toLowerCase())
          if (known !== undefined && known === metadata.updated_at) return
          try {
            this.#write(metadata)
          } catch (err) {
            report.skipped.push({ run_id: runId, reason: describe(err) })
            return
          }
          if (known === undefined) report.added++
          else report.updated++
        })
      })()
    }
    // The version is written last, so an interrupted build is not taken for a finished one.
    if (this.#rebuilt !== null) this.#db.pragma(`user_version = ${SQLITE_INDEX_VERSION}`)
    this.#reconciled = true
    return report
  }

  /** Writes a run's new state (null: gone), after what could not be written before; kept for later when it fails. */
  #change (runId: string, metadata: RunMetadata | null): void {
    this.#unwritten.delete(runId) // superseded by this change
    this.#catchUp()
    try {
      this.#apply(runId, metadata)
    } catch (err) {
      this.#unwritten.set(runId, metadata)
      throw err
    }
  }

  /** Writes the changes that failed before; each that fails again stays for the next try. */
  #catchUp (): void {
    for (const [runId, metadata] of this.#unwritten) {
      try {
        this.#apply(runId, metadata)
        this.#unwritten.delete(runId)
      } catch {
        // still no room (or a change that can never be written): the next start reads every run
      }
    }
  }

  #apply (runId: string, metadata: RunMetadata | null): void {
    if (metadata === null) this.#removeTransaction(runId)
    else this.#upsertTransaction(metadata)
  }

  #statement (sql: string): Database.Statement {
    let statement = this.#statements.get(sql)
    if (statement === undefined) {
      statement = this.#db.prepare(sql)
      this.#statements.set(sql, statement)
    }
    return statement
  }

  #write (metadata: RunMetadata): void {
    const runId = metadata.run_id.toLowerCase()
    const outputs = metadata.outputs
    const { output_count: outputCount, media_types: mediaTypes, backends } = distinctOutputs(metadata)
    const timestampMs = Date.parse(metadata.timestamp)
    const { rowid } = this.#statement(`
      INSERT INTO runs (run_id, timestamp, timestamp_ms, updated_at, status, schema, execution_mode, user_id, input_text, transformed_text, output_count, media_types, backends)
      VALUES (@run_id, @timestamp, @timestamp_ms, @updated_at, @status, @schema, @execution_mode, @user_id, @input_text, @transformed_text, @output_count, @media_types, @backends)
      ON CONFLICT (run_id) DO UPDATE SET
        timestamp = excluded.timestamp, timestamp_ms = excluded.timestamp_ms, updated_at = excluded.updated_at,
        status = excluded.status, schema = excluded.schema, execution_mode = excluded.execution_mode,
        user_id = excluded.user_id, input_text = excluded.input_text, transformed_text = excluded.transformed_text,
        output_count = excluded.output_count, media_types = excluded.media_types, backends = excluded.backends
      RETURNING rowid`).get({
      run_id: runId,
      timestamp: metadata.timestamp,
      timestamp_ms: Number.isNaN(timestampMs) ? null : timestampMs,
      updated_at: metadata.updated_at,
      status: metadata.status,
      schema: metadata.schema,
      execution_mode: metadata.execution_mode,
      user_id: metadata.user_id ?? null,
      input_text: metadata.input_text,
      transformed_text: metadata.transformed_text ?? null,
      output_count: outputCount,
      media_types: JSON.stringify(mediaTypes),
      backends: JSON.stringify(backends)
    }) as { rowid: number }
    this.#statement('DELETE FROM run_outputs WHERE run_id = ?').run(runId)
    const insertOutput = this.#statement('INSERT INTO run_outputs (run_id, position, media_type, backend) VALUES (?, ?, ?, ?)')
    outputs.forEach((output, position) => { insertOutput.run(runId, position, output.type, output.backend) })
    this.#statement('DELETE FROM run_texts WHERE rowid = ?').run(rowid)
    this.#statement('INSERT INTO run_texts (rowid, input_text, transformed_text) VALUES (?, ?, ?)')
      .run(rowid, fold(metadata.input_text), metadata.transformed_text == null ? null : fold(metadata.transformed_text))
  }

  #delete (runId: string): void {
    this.#statement('DELETE FROM run_texts WHERE rowid = (SELECT rowid FROM runs WHERE run_id = ?)').run(runId)
    this.#statement('DELETE FROM run_outputs WHERE run_id = ?').run(runId)
    this.#statement('DELETE FROM runs WHERE run_id = ?').run(runId)
  }
}

/** Opens an existing index file; null when it is not a healthy SQLite database. */
function openChecked (path: string): Database.Database | null {
  let db: Database.Database | undefined
  try {
    db = new Database(path)
    db.pragma('journal_mode = WAL')
    if (db.pragma('quick_check', { simple: true }) !== 'ok') {
      db.close()
      return null
    }
    return db
  } catch (err) {
    db?.close()
    if (err instanceof Database.SqliteError && /^SQLITE_(NOTADB|CORRUPT)/.test(err.code)) return null
    throw err
  }
}

async function removeDatabaseFiles (path: string): Promise<void> {
  for (const suffix of ['', '-wal', '-shm', '-journal']) await rm(path + suffix, { force: true })
}

function setMeta (db: Database.Database, key: string, value: string): void {
  db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(key, value)
}

/** The same text for "Über", "über" and a decomposed "ü". */
function fold (text: string): string {
  return text.normalize('NFC').toLowerCase()
}

function toEntry (row: EntryRow): RunIndexEntry {
  return { ...row, media_types: JSON.parse(row.media_types) as MediaType[], backends: JSON.parse(row.backends) as string[] }
}

function describe (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
