import type { TrashedRun } from './blob-store.js'

// `<run_id>@<when, e.g. 20261203T101500123Z>`: the time is in the entry's name, so the run's files stay as they were.
const TRASH_ENTRY = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})@(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z$/i

/** The name of a trash entry (a folder on disk, a key prefix in a bucket): no colons, and it sorts by time. */
export function trashEntryName ({ runId, deletedAt }: TrashedRun): string {
  return `${runId}@${deletedAt.toISOString().replace(/[-:.]/g, '')}`
}

/** A trash entry's run and time, from its name; null for anything else in the trash. */
export function parseTrashEntry (name: string): TrashedRun | null {
  const match = TRASH_ENTRY.exec(name)
  if (match === null) return null
  const [, runId, year, month, day, hours, minutes, seconds, millis] = match
  const deletedAt = new Date(`${year}-${month}-${day}T${hours}:${minutes}:${seconds}.${millis}Z`)
  return Number.isNaN(deletedAt.getTime()) ? null : { runId: runId!, deletedAt }
}

/** The most recently trashed first; for one time, the newest run id first. */
export function byTrashTime (a: TrashedRun, b: TrashedRun): number {
  return b.deletedAt.getTime() - a.deletedAt.getTime() || (a.runId < b.runId ? 1 : -1)
}

/** A file name of a run: names come from metadata the service wrote, and a separator would leave the run. */
export function fileName (name: string): string {
  if (name === '' || name.includes('/') || name.includes('\\') || name === '.' || name === '..') {
    throw new TypeError(`not a file name: ${JSON.stringify(name).slice(0, 80)}`)
  }
  return name
}
