import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses } from '../schemas/common.js'
import { MetricsUnauthorizedError } from '../services/errors.js'
import { bearerTokenCheck } from '../services/http/bearer-token.js'

const metricsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const token = app.config.METRICS_TOKEN
  const authorized = token === undefined ? null : bearerTokenCheck(token)

  app.get('/metrics', {
    // Scraped most usefully while the service struggles.
    config: { answersWhenOverloaded: true },
    schema: {
      tags: ['service'],
      summary: 'numbers to watch, in Prometheus text format',
      description: 'Requests by route and status with latency histograms, runs by status, media stored, generation time and queue depth per backend, ' +
        'the run index, the free space of RUNS_DIR, and Node\'s process metrics. ' +
        (authorized === null ? 'Open: METRICS_TOKEN is not set.' : 'Needs Authorization: Bearer <METRICS_TOKEN>.'),
      ...(authorized === null ? {} : { security: [{ metricsToken: [] }] }),
      response: {
        200: { description: 'the Prometheus text exposition format, version 0.0.4', content: { 'text/plain': { schema: { type: 'string' } } } },
        ...(authorized === null ? {} : errorResponses(401))
      }
    },
    onRequest: async (request, reply) => {
      if (authorized === null || authorized(request.headers.authorization)) return
      void reply.header('WWW-Authenticate', 'Bearer realm="runstore metrics"')
      throw new MetricsUnauthorizedError()
    }
  }, async (_request, reply) => {
    const text = await app.metrics.exposition()
    return await reply.type(app.metrics.contentType).header('Cache-Control', 'no-store').send(text)
  })
}

export default metricsRoutes
