import fp from 'fastify-plugin'
import { PreInterceptionStage } from '../../services/pipeline/stages/pre-interception.js'

/** Stage 1: translation and the safety check of the input. */
export default fp(async function preInterceptionStage (app) {
  app.pipeline.addStage(new PreInterceptionStage())
}, { name: 'stage-pre-interception', dependencies: ['pipeline'] })
