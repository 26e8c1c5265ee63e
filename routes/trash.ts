import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { errorResponses, RunIdParams, STORAGE_FAILURES } from '../schemas/common.js'
import { RunMetadata } from '../schemas/run.js'
import { TrashList } from '../schemas/trash-api.js'

const trashRoutes: FastifyPluginAsyncTypebox = async (app) => {
  // Before validation: who may not see the trash learns nothing about what is asked of it.
  const onRequest = async (request: FastifyRequest): Promise<void> => { await app.requireAdmin(request) }

  app.get('/api/trash', {
    onRequest,
    schema: {
      tags: ['runs'],
      summary: 'the deleted runs that can still be restored (admin)',
      description: 'DELETE /api/runs/:run_id moves a run here; it stays restorable until emptying the trash removes it (TRASH_DAYS after its deletion). schema, user_id and input_text come from the run\'s metadata.json.',
      security: [{ adminToken: [] }],
      response: { 200: TrashList, ...errorResponses(401, 403) }
    }
  }, async () => ({ trash_days: app.trash.trashDays, runs: await app.trash.list() }))

  app.post('/api/trash/:run_id/restore', {
    onRequest,
    schema: {
      tags: ['runs'],
      summary: 'bring a deleted run back, byte for byte as it was (admin)',
      description: 'The run is listed and served again as before its deletion; the answer is its metadata. 404 TRASHED_RUN_NOT_FOUND when it is not in the trash (never deleted, restored already, removed for good); 409 RUN_EXISTS while a run with that id exists (nothing is replaced). Like every write: 507 INSUFFICIENT_STORAGE when the disk is full, 503 STORAGE_UNAVAILABLE when it takes no writes.',
      params: RunIdParams,
      security: [{ adminToken: [] }],
      response: { 200: RunMetadata, ...errorResponses(400, 401, 403, 404, 409, ...STORAGE_FAILURES) }
    }
  }, async (request) => await app.trash.restore(request.params.run_id))
}

export default trashRoutes
