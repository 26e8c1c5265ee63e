import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { ArchiveList, ArchiveReport, MaintenanceBody, PruneReport, RestoreBody, RestoreReport } from '../schemas/archives-api.js'
import { errorResponses, STORAGE_FAILURES } from '../schemas/common.js'

const archiveRoutes: FastifyPluginAsyncTypebox = async (app) => {
  // Before validation: who may not maintain the store learns nothing about what is asked of it.
  const onRequest = async (request: FastifyRequest): Promise<void> => { await app.requireAdmin(request) }
  const { archives } = app

  app.get('/api/archives', {
    onRequest,
    schema: {
      tags: ['archives'],
      summary: 'the monthly run archives (admin)',
      description: 'Runs finished and older than ARCHIVE_AFTER_DAYS are packed into ZIP files in ARCHIVE_DIR, one per month and pass, each with manifest.json (every run id, every file\'s path, size and sha256). GET /api/runs?archived=include|only lists their runs, with the archive that holds each.',
      security: [{ adminToken: [] }],
      response: { 200: ArchiveList, ...errorResponses(401, 403) }
    }
  }, async () => ({ archive_after_days: archives.archiveAfterDays, retention_days: archives.retentionDays, archives: await archives.listArchives() }))

  app.post('/api/maintenance/archive', {
    onRequest,
    schema: {
      tags: ['archives'],
      summary: 'archive the finished runs older than ARCHIVE_AFTER_DAYS now (admin)',
      description: 'What the schedule (MAINTENANCE_INTERVAL_HOURS) and `runstore archive` do. Each month\'s runs go into a new part, written and synced before any run leaves the store; they answer 404 RUN_ARCHIVED from then on. With dry_run, only says which runs would go into which archive. Nothing happens when ARCHIVE_AFTER_DAYS is 0.',
      body: MaintenanceBody,
      security: [{ adminToken: [] }],
      response: { 200: ArchiveReport, ...errorResponses(400, 401, 403, ...STORAGE_FAILURES) }
    }
  }, async (request) => await archives.archive({ dryRun: request.body.dry_run === true }))

  app.post('/api/maintenance/prune', {
    onRequest,
    schema: {
      tags: ['archives'],
      summary: 'remove archives older than RETENTION_DAYS and empty the trash now (admin)',
      description: 'Archives whose month ended more than RETENTION_DAYS ago are removed for good (none while it is 0), and so are the runs deleted into the trash more than TRASH_DAYS ago. With dry_run, only says what would be removed.',
      body: MaintenanceBody,
      security: [{ adminToken: [] }],
      response: { 200: PruneReport, ...errorResponses(400, 401, 403, ...STORAGE_FAILURES) }
    }
  }, async (request) => await archives.prune({ dryRun: request.body.dry_run === true }))

  app.post('/api/archives/restore', {
    onRequest,
    schema: {
      tags: ['archives'],
      summary: 'bring an archived run, or a month of them, back into the live store (admin)',
      description: 'Every file is checked against the size and sha256 in its archive\'s manifest and comes back byte for byte (500 ARCHIVE_DAMAGED restores nothing of a run that does not match); its archive is rewritten without it. 409 RUN_EXISTS when a live run has that id (nothing is replaced; for a month such runs are skipped and listed); 404 ARCHIVED_RUN_NOT_FOUND when no archive holds it.',
      body: RestoreBody,
      security: [{ adminToken: [] }],
      response: { 200: RestoreReport, ...errorResponses(400, 401, 403, 404, 409, 500, ...STORAGE_FAILURES) }
    }
  }, async (request) => await archives.restore('run_id' in request.body ? request.body.run_id : request.body.month))
}

export default archiveRoutes
