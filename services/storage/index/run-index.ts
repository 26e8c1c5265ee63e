import type { MediaType } from '../../../schemas/media.js'
import type { RunMetadata } from '../../../schemas/run.js'
import { InvalidCursorError, InvalidRunFilterError } from '../../errors.js'

export const DEFAULT_LIST_LIMIT = 50
export const MAX_LIST_LIMIT = 200

/**
 * The runs for listing and filtering (GET /api/runs): derived data that the
 * store's change events keep current and that can always be rebuilt from the
 * store. It keeps data, never URLs: routes build those. Asynchronous, so an
 * index in another process (a database server) fits behind it.
 */
export interface RunIndex {
  /** for logs: which index this is */
  readonly description: string
  /**
   * A write of this run is about to start. Noted durably before the write,
   * so that a crash between the write and its upsert or remove is caught up
   * at the next start by reading only the runs noted, not every run.
   */
  begin: (runId: string) => Promise<void>
  /** adds or replaces the run's entry from its metadata; `archive` names the archive holding the run (null: live in the store) */
  upsert: (metadata: RunMetadata, archive?: string | null) => Promise<void>
  remove: (runId: string) => Promise<void>
  /** the archive holding the run, as the index knows it; null for a live run or one it does not know */
  archiveOf: (runId: string) => Promise<string | null>
  /** runs matching every given filter, newest first unless paging.order says otherwise */
  list: (filters?: RunListFilters, paging?: RunListPaging) => Promise<RunListResult>
  /**
   * Brings the index in line with the store, in the background of a
   * serving process: a missing index is built (resuming where an
   * interrupted build stopped), runs added or removed behind the service's
   * back are found. progress() tells how far it is.
   */
  catchUp: (source: RunSource, options?: { onProgress?: (progress: IndexProgress) => void }) => Promise<ReconcileReport>
  /**
   * The runs that processes which stopped without closing the index left
   * `running` (nothing will finish them), after reading again from `source`
   * what those processes had begun to write. An index of one process knows
   * only its own past: the running runs created before `startedAt`. An index
   * shared by instances knows which instance wrote each run last and names
   * only runs of instances that are gone, so that one instance never ends
   * what another is still working on; it can be asked again at any time.
   */
  abandonedRuns: (startedAt: Date, source: RunSource) => Promise<string[]>
  /** whether the index lists every stored run yet, and how far a build or catch-up is */
  progress: () => IndexProgress
  /**
   * Whether the process that used the index before stopped cleanly (closed
   * it). False after a crash, and for a new index: then what interrupted
   * writes left in the store is worth a sweep.
   */
  readonly lastStopWasClean: boolean
  /** how many runs it lists, by status, and the room it takes: what /metrics shows, cheap enough for every scrape */
  stats: () => Promise<RunIndexStats>
  /** whether it answers; false once closed */
  isOpen: () => Promise<boolean>
  close: () => Promise<void>
}

export interface IndexProgress {
  /**
   * ready: every stored run is listed; building: the index is being built
   * from the store, newest runs first (listings are short until it ends);
   * catching-up: the index was usable at start and is being compared with
   * the store (runs copied in by hand appear when it ends)
   */
  phase: 'ready' | 'building' | 'catching-up'
  /** false while building: a listing may lack runs the store has */
  complete: boolean
  /** runs the index holds now */
  indexed_runs: number
  /** live runs the store holds, as a build or catch-up under way listed them; null when none is under way, or before */
  stored_runs: number | null
}

export interface RunIndexStats {
  runs: number
  /** runs per status, only the statuses some run has */
  byStatus: Record<string, number>
  /** what the index takes on disk; null for an index that cannot tell */
  sizeBytes: number | null
}

/** Where the runs really are; RunStorage is one. */
export interface RunSource {
  /** run ids, newest first */
  listRunIds: () => Promise<string[]>
  /** the metadata as stored now (not from a cache): RunNotFoundError when the run is gone */
  readMetadata: (runId: string) => Promise<RunMetadata>
  /** the archived runs, so that a rebuilt index lists them too; none when not given */
  archives?: ArchivedRunSource
}

/** A run in an archive, by the archive's name. */
export interface ArchivedRunRef {
  run_id: string
  archive: string
}

/** Where archived runs are (services/storage/archive/). */
export interface ArchivedRunSource {
  /** every archived run once, with the archive holding it (the newest when several do) */
  listArchivedRuns: () => Promise<ArchivedRunRef[]>
  /** their metadata.json as archived, in the order given */
  readArchivedMetadata: (runs: ArchivedRunRef[]) => Promise<RunMetadata[]>
}

export interface ReconcileReport {
  /** why the index was built again from the store; null when the existing index was used */
  rebuilt: 'missing' | 'old-version' | 'corrupt' | null
  /** every run's metadata was read, not only the runs the index lacked */
  fullScan: boolean
  /** runs whose write a stopped process had begun (the journal), read again at start */
  journaled: number
  added: number
  updated: number
  removed: number
  /** runs that could not be indexed, with the reason */
  skipped: Array<{ run_id: string, reason: string }>
}

export interface RunListFilters {
  user_id?: string | undefined
  schema?: string | undefined
  /** with media_type: one output has both */
  backend?: string | undefined
  media_type?: MediaType | undefined
  status?: string | undefined
  /** inclusive bound on the run's timestamp: an ISO date-time with zone, or a date (UTC midnight) */
  from?: string | undefined
  /** exclusive bound, same forms as from */
  to?: string | undefined
  /** a substring of input_text or transformed_text, case-insensitive */
  q?: string | undefined
  /** exclude (the default): live runs only; include: archived runs too; only: archived runs only */
  archived?: 'exclude' | 'include' | 'only' | undefined
}

export type RunListOrder = 'desc' | 'asc'

export interface RunListPaging {
  limit?: number | undefined
  /** next_cursor of the previous page, given out for the same order */
  cursor?: string | undefined
  /** by the run's timestamp: desc (newest first, the default) or asc */
  order?: RunListOrder | undefined
}

/** What the index keeps of a run: enough to list and filter without reading metadata.json. */
export interface RunIndexEntry {
  run_id: string
  timestamp: string
  updated_at: string
  status: string
  schema: string
  execution_mode: string
  user_id: string | null
  input_text: string
  transformed_text: string | null
  output_count: number
  /** each type once, in the order of outputs[] */
  media_types: MediaType[]
  /** each backend once, in the order of outputs[] */
  backends: string[]
  /** the archive holding the run; null while it is live in the store */
  archive: string | null
}

export interface RunListResult {
  runs: RunIndexEntry[]
  /** null on the last page */
  next_cursor: string | null
  /** runs matching the filters: exact when total_exact, else a lower bound (counting stops at COUNT_LIMIT) */
  total: number
  total_exact: boolean
}

/** Counting matches stops here: a total past it is said to be a lower bound, so that no page pays for counting a million runs. */
export const COUNT_LIMIT = 500

/** The limit of a page, checked the same way by every index. */
export function pageLimit (paging: RunListPaging): number {
  const limit = paging.limit ?? DEFAULT_LIST_LIMIT
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) throw new InvalidRunFilterError(`limit must be an integer from 1 to ${MAX_LIST_LIMIT}`)
  return limit
}

// A cursor is the order and the sort key of a page's last run, so that it can only continue that order.
const CURSOR = /^([ad])(0|[1-9][0-9]{0,15})$/

/** The cursor after a run whose sort key is `key`, encoded so that clients treat it as opaque. */
export function encodeCursor (order: RunListOrder, key: number): string {
  return Buffer.from(`${order === 'asc' ? 'a' : 'd'}${key}`, 'utf8').toString('base64url')
}

/** The sort key a cursor continues after; refused when it is not one this service gave out for `order`. */
export function decodeCursor (cursor: string, order: RunListOrder): number {
  const text = Buffer.from(cursor, 'base64url').toString('utf8')
  const match = CURSOR.exec(text)
  // base64url decoding skips what it does not understand: only the exact encoding counts.
  const key = Number(match?.[2])
  if (match === null || !Number.isSafeInteger(key) || Buffer.from(text, 'utf8').toString('base64url') !== cursor || match[1] !== (order === 'asc' ? 'a' : 'd')) {
    throw new InvalidCursorError(JSON.stringify(cursor.slice(0, 60)))
  }
  return key
}

// A date alone, or a date-time with its zone: without one the instant would depend on the server's zone.
const INSTANT = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:[Zz]|[+-]\d{2}:?\d{2}))?$/

/** Milliseconds of an ISO date-time or of a date's UTC midnight; a day that does not exist (Feb 30) is refused, not rolled over. */
export function parseInstant (name: string, value: string): number {
  const match = INSTANT.exec(value)
  const ms = match === null ? Number.NaN : Date.parse(value)
  if (match !== null && !Number.isNaN(ms)) {
    const [year, month, day] = match.slice(1, 4).map(Number) as [number, number, number]
    const date = new Date(Date.UTC(year, month - 1, day))
    if (date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day) return ms
  }
  throw new InvalidRunFilterError(`${name} must be an ISO date-time with a time zone or a date, not ${JSON.stringify(value.slice(0, 40))}`)
}

// 1024 sort keys per millisecond: Number keys stay exact (below 2^53) until the year 2248.
const KEYS_PER_MS = 1024
const LAST_MS = Math.floor(Number.MAX_SAFE_INTEGER / KEYS_PER_MS) - 1

/**
 * The first sort key of a millisecond: runs sort by their timestamp, so a
 * date range is a range of keys. A timestamp that is not a date sorts as 1970.
 */
export function sortKeyOfMs (ms: number): number {
  const clamped = Number.isNaN(ms) ? 0 : Math.min(Math.max(Math.floor(ms), 0), LAST_MS)
  return clamped * KEYS_PER_MS
}

/**
 * A run's preferred sort key: its timestamp, then the counter a UUIDv7
 * carries after its milliseconds (the order runs of one millisecond were
 * made in). An index that finds the key taken by another run takes the next.
 */
export function preferredSortKey (runId: string, timestamp: string): number {
  const counter = Number.parseInt(runId.slice(15, 18), 16)
  return sortKeyOfMs(Date.parse(timestamp)) + (Number.isNaN(counter) ? 0 : counter % KEYS_PER_MS)
}
