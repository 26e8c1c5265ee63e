import { Type, type Static } from '@sinclair/typebox'
import { RunId } from './run.js'

// What the archive and maintenance routes take and answer (services/storage/archive/).

const Month = Type.String({ pattern: '^\\d{4}-(0[1-9]|1[0-2])$', description: 'a month as YYYY-MM (UTC), the runs\' creation month', examples: ['2026-01'] })
const ArchiveName = Type.String({ description: 'the archive\'s file name in ARCHIVE_DIR: runs-YYYY-MM.zip, runs-YYYY-MM-2.zip for a second part, …', examples: ['runs-2026-01.zip'] })

export const ArchiveSummary = Type.Object({
  archive: ArchiveName,
  month: Month,
  part: Type.Integer({ minimum: 1, description: 'a month archived in several passes has several parts' }),
  runs: Type.Integer({ minimum: 0 }),
  bytes: Type.Integer({ minimum: 0, description: 'the archive file\'s size' }),
  created_at: Type.String({ format: 'date-time', description: 'when the archive was written (or last rewritten, after a restore)' })
})

export const ArchiveList = Type.Object({
  archive_after_days: Type.Integer({ description: 'ARCHIVE_AFTER_DAYS (0: nothing is archived)' }),
  retention_days: Type.Integer({ description: 'RETENTION_DAYS (0: archives are kept for ever)' }),
  archives: Type.Array(ArchiveSummary, { description: 'the newest month (and part) first' })
})

export const MaintenanceBody = Type.Object({
  dry_run: Type.Optional(Type.Boolean({ default: false, description: 'only say what would happen; nothing changes' }))
})
export type MaintenanceBody = Static<typeof MaintenanceBody>

export const ArchiveReport = Type.Object({
  dry_run: Type.Boolean(),
  archive_after_days: Type.Integer({ description: 'ARCHIVE_AFTER_DAYS; 0: nothing was archived' }),
  archives: Type.Array(Type.Object({ archive: ArchiveName, month: Month, runs: Type.Array(RunId) }), { description: 'the parts written (with dry_run: that would be), with their runs' })
})

export const PruneReport = Type.Object({
  dry_run: Type.Boolean(),
  retention_days: Type.Integer({ description: 'RETENTION_DAYS; 0: no archive was removed' }),
  archives: Type.Array(Type.Object({ archive: ArchiveName, month: Month, runs: Type.Integer({ minimum: 0 }) }), { description: 'archives removed for good (with dry_run: that would be)' }),
  trash: Type.Object({
    dry_run: Type.Boolean(),
    older_than_days: Type.Integer({ description: 'TRASH_DAYS' }),
    removed: Type.Array(Type.Object({ run_id: RunId, deleted_at: Type.String({ format: 'date-time' }) }), { description: 'trashed runs removed for good (with dry_run: that would be)' }),
    kept: Type.Integer({ minimum: 0, description: 'runs left in the trash, deleted more recently' })
  })
})

export const RestoreBody = Type.Union([
  Type.Object({ run_id: RunId }, { additionalProperties: false }),
  Type.Object({ month: Month }, { additionalProperties: false })
], { description: 'one run by its id, or every archived run of a month' })
export type RestoreBody = Static<typeof RestoreBody>

export const RestoreReport = Type.Object({
  restored: Type.Array(RunId, { description: 'runs live again, byte for byte as archived' }),
  skipped: Type.Array(Type.Object({ run_id: RunId, reason: Type.String() }), { description: 'runs of the month left archived because a live run has their id' })
})
