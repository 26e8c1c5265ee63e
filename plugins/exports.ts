import fp from 'fastify-plugin'
import type { RunExporter } from '../services/export/export-archive.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** bulk exports (GET /api/exports): the selected runs as one ZIP stream */
    exporter: RunExporter
  }
}

export default fp(async function exportsPlugin (app) {
  app.decorate('exporter', app.runstore.exporter)
}, { name: 'exports', dependencies: ['runstore'] })
