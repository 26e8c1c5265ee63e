import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses } from '../schemas/common.js'
import { HealthAnswer, ReadyAnswer } from '../schemas/service.js'
import { errorBody } from '../services/errors.js'

const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/health', {
    // Alive is alive: a container restarted for being busy would lose the runs in flight.
    config: { answersWhenOverloaded: true },
    schema: {
      tags: ['service'],
      summary: 'the process is alive',
      response: { 200: HealthAnswer }
    }
  }, async () => ({ status: 'ok' as const }))

  app.get('/ready', {
    schema: {
      tags: ['service'],
      summary: 'the service can take work: the runs folder takes a small write (4 KiB, synced) and the run index answers; index tells how complete it is',
      response: {
        200: ReadyAnswer,
        ...errorResponses(503)
      }
    }
  }, async (request, reply) => {
    const storageWritable = await app.storage.isWritable()
    const indexOpen = await app.runIndex.isOpen()
    if (!storageWritable || !indexOpen) {
      const failing = [...(storageWritable ? [] : ['the runs folder cannot take a small write (full, read-only or missing)']), ...(indexOpen ? [] : ['the run index does not answer'])]
      return await reply.code(503).send(errorBody(503, 'NOT_READY', failing.join('; ')))
    }
    const index = app.runIndex.progress()
    return { status: 'ready' as const, checks: { storage_writable: storageWritable, index_open: indexOpen, index_complete: index.complete, startup_done: app.runstore.startupDone() }, index }
  })
}

export default healthRoutes
