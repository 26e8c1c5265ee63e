import fp from 'fastify-plugin'
import type { PipelineRunner } from '../services/pipeline/pipeline-runner.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** the pipeline runner with its stages in order (runstore.ts), its pipelines and text providers */
    pipeline: PipelineRunner
  }
}

export default fp(async function pipelinePlugin (app) {
  app.decorate('pipeline', app.runstore.pipeline)
}, { name: 'pipeline', dependencies: ['runstore'] })
