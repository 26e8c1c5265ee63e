import fp from 'fastify-plugin'
import type { BackendRegistry } from '../services/backends/registry.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** the generator backends with their queues, and the output configs (checked at start) */
    backends: BackendRegistry
  }
}

export default fp(async function backendsPlugin (app) {
  app.decorate('backends', app.runstore.backends)
}, { name: 'backends', dependencies: ['runstore'] })
