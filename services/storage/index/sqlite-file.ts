import Database from 'better-sqlite3'
import { rm } from 'node:fs/promises'

// The index file itself: its version and tables, the upgrades done in place, opening it with a check
// of what every start reads, and its meta values (built, clean_stop, damaged, ...).

/** Bumped whenever the tables or what a row holds change: an index of another version is rebuilt. */
export const SQLITE_INDEX_VERSION = 4
/**
 * Files of these versions are brought to the current one in place (a new
 * B-tree index: a second or two at a million runs) instead of being built
 * again from the store; only for versions whose tables and rows are the
 * current ones (see isReadableVersion). 3 → 4: one user's runs are walked with the archived
 * flag in the index, so a listing checks a run's text without reading its row.
 */
const UPGRADES: Record<number, string> = {
  3: 'DROP INDEX runs_by_user; CREATE INDEX runs_by_user ON runs (user_id, archived);'
}

/**
 * Whether a file of this version can be read as it is (by a tool that must not write it): the
 * current one, and those UPGRADES lists, which differ from it in an index only, never in tables or rows.
 */
export function isReadableVersion (version: number): boolean {
  return version === SQLITE_INDEX_VERSION || version in UPGRADES
}

// seq is the sort key (the timestamp's milliseconds × 1024 + a tiebreak) and the rowid that the
// text index and the facet rows share: every listing reads one of them in key order.
// The text table holds the texts case-folded, so that the instr() scan for queries too short
// for trigrams agrees with the trigram tokenizer's own folding.
// run_counts is kept by triggers, so totals and /metrics never count a million rows.
export const SCHEMA = `
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE runs (
  seq INTEGER PRIMARY KEY,
  run_id TEXT NOT NULL UNIQUE,
  timestamp TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  status TEXT NOT NULL,
  schema TEXT NOT NULL,
  execution_mode TEXT NOT NULL,
  user_id TEXT,
  input_text TEXT NOT NULL,
  transformed_text TEXT,
  output_count INTEGER NOT NULL,
  media_types TEXT NOT NULL,
  backends TEXT NOT NULL,
  archived INTEGER NOT NULL,
  archive TEXT
);
CREATE INDEX runs_by_user ON runs (user_id, archived);
CREATE INDEX runs_by_schema ON runs (schema);
CREATE INDEX runs_by_status ON runs (status);
CREATE TABLE run_facets (facet TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (facet, seq)) WITHOUT ROWID;
CREATE VIRTUAL TABLE run_texts USING fts5(input_text, transformed_text, tokenize = 'trigram');
CREATE TABLE journal (run_id TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE run_counts (status TEXT NOT NULL, archived INTEGER NOT NULL, runs INTEGER NOT NULL, PRIMARY KEY (status, archived)) WITHOUT ROWID;
CREATE TRIGGER runs_counted_in AFTER INSERT ON runs BEGIN
  INSERT INTO run_counts VALUES (new.status, new.archived, 1) ON CONFLICT DO UPDATE SET runs = runs + 1;
END;
CREATE TRIGGER runs_counted_out AFTER DELETE ON runs BEGIN
  UPDATE run_counts SET runs = runs - 1 WHERE status = old.status AND archived = old.archived;
END;
CREATE TRIGGER runs_counted_again AFTER UPDATE OF status, archived ON runs BEGIN
  UPDATE run_counts SET runs = runs - 1 WHERE status = old.status AND archived = old.archived;
  INSERT INTO run_counts VALUES (new.status, new.archived, 1) ON CONFLICT DO UPDATE SET runs = runs + 1;
END;
`

/** Brings a file of a version listed in UPGRADES to the current one, in one transaction. */
function upgrade (db: Database.Database): void {
  const version = db.pragma('user_version', { simple: true }) as number
  const step = UPGRADES[version]
  if (step === undefined) return
  db.transaction(() => {
    db.exec(step)
    db.pragma(`user_version = ${SQLITE_INDEX_VERSION}`)
  })()
}

/**
 * Opens an existing index file; null when it is not a SQLite database or
 * the pages every start reads are damaged. The full integrity check reads
 * the whole file, so it is not done here: a start must not take longer with
 * more runs (checkIntegrity runs it in the background after a stop that
 * was not clean, and a listing that meets damage says so).
 */
export function openChecked (path: string): Database.Database | null {
  let db: Database.Database | undefined
  try {
    db = new Database(path)
    db.pragma('journal_mode = WAL')
    upgrade(db)
    if (db.pragma('user_version', { simple: true }) === SQLITE_INDEX_VERSION) {
      db.prepare('SELECT count(*) FROM meta').get()
      db.prepare('SELECT count(*) FROM run_counts').get()
      db.prepare('SELECT count(*) FROM journal').get()
      // Found damaged while in use (markDamaged): started afresh, not resumed.
      if (getMeta(db, 'damaged') === '1') {
        db.close()
        return null
      }
    }
    return db
  } catch (err) {
    db?.close()
    if (isDamage(err)) return null
    throw err
  }
}

export function isDamage (err: unknown): boolean {
  return err instanceof Database.SqliteError && /^SQLITE_(NOTADB|CORRUPT)/.test(err.code)
}

/** The file and its companions (WAL, shared memory, rollback journal). */
export async function removeDatabaseFiles (path: string): Promise<void> {
  for (const suffix of ['', '-wal', '-shm', '-journal']) await rm(path + suffix, { force: true })
}

export function setMeta (db: Database.Database, key: string, value: string): void {
  db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(key, value)
}

export function getMeta (db: Database.Database, key: string): string | null {
  return (db.prepare('SELECT value FROM meta WHERE key = ?').pluck().get(key) as string | undefined) ?? null
}
