import fp from 'fastify-plugin'
import type { RunstoreMetrics } from '../services/metrics/metrics.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** the numbers GET /metrics shows (services/metrics/metrics.ts) */
    metrics: RunstoreMetrics
  }
}

/** Decorates the instance with the metrics runstore.ts built and times every answer, by route pattern and status. */
export default fp(async function metricsPlugin (app) {
  const { metrics } = app.runstore
  app.decorate('metrics', metrics)
  // A callback hook, not an async one: it runs after every answer, media ones included.
  app.addHook('onResponse', (request, reply, done) => {
    metrics.observeRequest(request.method, request.routeOptions.url, reply.statusCode, reply.elapsedTime)
    done()
  })
}, { name: 'metrics', dependencies: ['runstore'] })
