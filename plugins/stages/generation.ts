import fp from 'fastify-plugin'
import { GenerationStage } from '../../services/pipeline/stages/generation.js'

/** Stage 4: the output configs run on their backends, through the queues; the results are stored. */
export default fp(async function generationStage (app) {
  app.pipeline.addStage(new GenerationStage())
}, { name: 'stage-generation', dependencies: ['pipeline', 'stage-pre-output-safety'] })
