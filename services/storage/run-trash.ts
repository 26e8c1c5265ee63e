import type { RunMetadata } from '../../schemas/run.js'
import { RunExistsError, TrashedRunNotFoundError } from '../errors.js'
import { BlobExistsError, BlobNotFoundError, type TrashedRun } from './blob/blob-store.js'
import { assertRunId } from './run-id.js'
import { METADATA_FILE, type RunStorage } from './run-storage.js'

const DAY_MS = 24 * 60 * 60 * 1000
// metadata.json files read at once to describe the trash
const READ_BATCH = 32

/** A run in the trash, as GET /api/trash shows it; the fields its metadata.json gives are null when it cannot be read. */
export interface TrashedRunSummary {
  run_id: string
  /** when it was deleted (ISO 8601) */
  deleted_at: string
  schema: string | null
  user_id: string | null
  input_text: string | null
}

export interface EmptyTrashOptions {
  /** runs deleted at least this many days before `now` are removed; default: TRASH_DAYS. 0: all of them */
  olderThanDays?: number
  /** default: the current time */
  now?: Date
  /** only say what would be removed */
  dryRun?: boolean
}

export interface EmptyTrashReport {
  dry_run: boolean
  older_than_days: number
  /** what was removed for good (with dry_run: what would be), the oldest deletion first */
  removed: Array<{ run_id: string, deleted_at: string }>
  /** runs left in the trash because they were deleted more recently */
  kept: number
}

/**
 * Deleting runs so that a mistake can be undone: DELETE moves a run into the
 * blob store's trash (one rename: after a crash it is whole on one side or
 * the other), from where it can be restored byte for byte until the trash
 * is emptied. The run records keep the per-run lock, the metadata cache and
 * the events (run.deleted, run.restored) right; this decides what a delete
 * means (TRASH_DAYS) and which trashed runs are old enough to go for good.
 */
export class RunTrash {
  readonly #storage: RunStorage
  /** how long a deleted run stays restorable; 0: a delete removes it at once */
  readonly trashDays: number

  constructor (storage: RunStorage, options: { trashDays: number }) {
    this.#storage = storage
    this.trashDays = options.trashDays
  }

  /** DELETE /api/runs/:run_id: into the trash, or gone at once when trashDays is 0. RunNotFoundError when there is no such run. */
  async deleteRun (runId: string): Promise<void> {
    const blobs = this.#storage.blobs
    if (this.trashDays === 0) await this.#storage.deleteRun(runId)
    else await this.#storage.deleteRun(runId, async (id) => await blobs.trashRun(id, new Date()))
  }

  /** The runs in the trash, the most recently deleted first, with the fields their metadata.json gives. */
  async list (): Promise<TrashedRunSummary[]> {
    const entries = await this.#storage.blobs.listTrash()
    const summaries: TrashedRunSummary[] = []
    for (let start = 0; start < entries.length; start += READ_BATCH) {
      summaries.push(...await Promise.all(entries.slice(start, start + READ_BATCH).map(async (entry) => await this.#summary(entry))))
    }
    return summaries
  }

  /**
   * Puts the most recently deleted run of this id back among the runs, as it
   * was. TrashedRunNotFoundError when it is not in the trash (also when
   * emptying the trash took it meanwhile), RunExistsError while a run of that
   * id is in the store.
   */
  async restore (runId: string): Promise<RunMetadata> {
    const id = assertRunId(runId)
    const entry = (await this.#storage.blobs.listTrash()).find((e) => e.runId === id)
    if (entry === undefined) throw new TrashedRunNotFoundError(id)
    try {
      return await this.#storage.restoreRun(id, async () => { await this.#storage.blobs.restoreTrashed(entry) })
    } catch (err) {
      if (err instanceof BlobNotFoundError) throw new TrashedRunNotFoundError(id)
      // a folder of that name appeared after the run records looked (copied in by hand)
      if (err instanceof BlobExistsError) throw new RunExistsError(id)
      throw err
    }
  }

  /**
   * Removes for good the runs deleted at least `olderThanDays` days before
   * `now` (with dryRun, only says which). Each goes by a rename to a temp
   * name that the crash sweep removes, so an interrupted run of this leaves
   * nothing restorable half-removed. A run restored meanwhile is left alone.
   * Safe beside a running service: entries are taken by rename, which only
   * one side can win.
   */
  async emptyTrash (options: EmptyTrashOptions = {}): Promise<EmptyTrashReport> {
    const olderThanDays = options.olderThanDays ?? this.trashDays
    const dryRun = options.dryRun ?? false
    const limit = (options.now ?? new Date()).getTime() - olderThanDays * DAY_MS
    const entries = await this.#storage.blobs.listTrash()
    const due = entries.filter((e) => e.deletedAt.getTime() <= limit).reverse()
    const removed: EmptyTrashReport['removed'] = []
    for (const entry of due) {
      if (dryRun || await this.#storage.blobs.removeTrashed(entry)) removed.push({ run_id: entry.runId, deleted_at: entry.deletedAt.toISOString() })
    }
    return { dry_run: dryRun, older_than_days: olderThanDays, removed, kept: entries.length - due.length }
  }

  async #summary (entry: TrashedRun): Promise<TrashedRunSummary> {
    const base = { run_id: entry.runId, deleted_at: entry.deletedAt.toISOString() }
    let metadata: Partial<RunMetadata> | null = null
    try {
      metadata = JSON.parse((await this.#storage.blobs.readTrashed(entry, METADATA_FILE)).toString('utf8')) as Partial<RunMetadata> | null
    } catch {
      // restored or removed meanwhile, or a damaged file: the entry is still worth showing
    }
    return { ...base, schema: text(metadata?.schema), user_id: text(metadata?.user_id), input_text: text(metadata?.input_text) }
  }
}

function text (value: unknown): string | null {
  return typeof value === 'string' ? value : null
}
