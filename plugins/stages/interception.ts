import fp from 'fastify-plugin'
import { InterceptionStage } from '../../services/pipeline/stages/interception.js'

/** Stage 2: the pipeline transforms the prompt. */
export default fp(async function interceptionStage (app) {
  app.pipeline.addStage(new InterceptionStage())
}, { name: 'stage-interception', dependencies: ['pipeline', 'stage-pre-interception'] })
