import fp from 'fastify-plugin'
import { PreOutputSafetyStage } from '../../services/pipeline/stages/pre-output-safety.js'

/** Stage 3: the transformed prompt is checked for each media type the run makes. */
export default fp(async function preOutputSafetyStage (app) {
  app.pipeline.addStage(new PreOutputSafetyStage())
}, { name: 'stage-pre-output-safety', dependencies: ['pipeline', 'stage-interception'] })
