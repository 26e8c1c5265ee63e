import type { MediaType } from '../../../schemas/media.js'
import type { RunMetadata } from '../../../schemas/run.js'
import { InvalidCursorError, InvalidRunFilterError } from '../../errors.js'
import { isRunId } from '../run-id.js'

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
  /** adds or replaces the run's entry from its metadata */
  upsert: (metadata: RunMetadata) => Promise<void>
  remove: (runId: string) => Promise<void>
  /** runs matching every given filter, newest first (UUIDv7 run ids sort by creation time) */
  list: (filters?: RunListFilters, paging?: RunListPaging) => Promise<RunListResult>
  /**
   * Brings the index in line with the store: runs it lacks are added,
   * entries without a run removed, and, when it cannot know what it missed
   * (first build, unclean shutdown), every run is read again.
   */
  reconcile: (source: RunSource) => Promise<ReconcileReport>
  /** how many runs it lists, by status, and the room it takes: what /metrics shows, cheap enough for every scrape */
  stats: () => Promise<RunIndexStats>
  /** whether it answers; false once closed */
  isOpen: () => Promise<boolean>
  close: () => Promise<void>
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
  getMetadata: (runId: string) => Promise<RunMetadata>
}

export interface ReconcileReport {
  /** why the index was built again from the store; null when the existing index was used */
  rebuilt: 'missing' | 'old-version' | 'corrupt' | null
  /** every run's metadata was read, not only the runs the index lacked */
  fullScan: boolean
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
}

export interface RunListPaging {
  limit?: number | undefined
  /** next_cursor of the previous page */
  cursor?: string | undefined
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
}

export interface RunListResult {
  runs: RunIndexEntry[]
  /** null on the last page */
  next_cursor: string | null
}

/** The limit of a page, checked the same way by every index. */
export function pageLimit (paging: RunListPaging): number {
  const limit = paging.limit ?? DEFAULT_LIST_LIMIT
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) throw new InvalidRunFilterError(`limit must be an integer from 1 to ${MAX_LIST_LIMIT}`)
  return limit
}

/** The cursor is the last run id of a page, encoded so that clients treat it as opaque. */
export function encodeCursor (runId: string): string {
  return Buffer.from(runId, 'utf8').toString('base64url')
}

export function decodeCursor (cursor: string): string {
  const runId = Buffer.from(cursor, 'base64url').toString('utf8')
  // base64url decoding skips what it does not understand: only the exact encoding of a run id counts.
  if (!isRunId(runId) || runId !== runId.toLowerCase() || encodeCursor(runId) !== cursor) {
    throw new InvalidCursorError(JSON.stringify(cursor.slice(0, 60)))
  }
  return runId
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

/** Each distinct value once, in the order of the run's outputs: what an entry keeps of them. */
export function distinctOutputs (metadata: RunMetadata): Pick<RunIndexEntry, 'media_types' | 'backends' | 'output_count'> {
  return {
    output_count: metadata.outputs.length,
    media_types: [...new Set(metadata.outputs.map((o) => o.type))],
    backends: [...new Set(metadata.outputs.map((o) => o.backend))]
  }
}
