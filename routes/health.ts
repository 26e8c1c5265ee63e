import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { errorResponses } from '../schemas/common.js'

const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/health', {
    schema: {
      tags: ['service'],
      summary: 'the process is alive',
      response: { 200: Type.Object({ status: Type.Literal('ok') }) }
    }
  }, async () => ({ status: 'ok' as const }))

  app.get('/ready', {
    schema: {
      tags: ['service'],
      summary: 'the service can take work: the runs folder is writable',
      response: {
        200: Type.Object({ status: Type.Literal('ready'), checks: Type.Record(Type.String(), Type.Boolean()) }),
        ...errorResponses(503)
      }
    }
  }, async (request, reply) => {
    const storageWritable = await app.storage.isWritable()
    if (!storageWritable) {
      return await reply.code(503).send({ statusCode: 503, error: 'Service Unavailable', code: 'NOT_READY', message: 'the runs folder is not writable' })
    }
    return { status: 'ready' as const, checks: { storage_writable: storageWritable } }
  })
}

export default healthRoutes
