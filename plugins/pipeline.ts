import fp from 'fastify-plugin'
import { join, resolve } from 'node:path'
import { listSetting } from '../config.js'
import { createTextProviders } from '../services/pipeline/llm-providers.js'
import type { TextStep } from '../services/pipeline/types.js'
import { loadPipelines } from '../services/pipeline/pipeline-definitions.js'
import { PipelineRunner } from '../services/pipeline/pipeline-runner.js'

declare module 'fastify' {
  interface FastifyInstance {
    pipeline: PipelineRunner
  }
}

/**
 * app.pipeline: the runner with the pipelines of CONFIGS_DIR/pipelines and
 * the text providers of each execution mode (an LLM when LLM_* is set, the
 * builtin ones otherwise). The stage plugins add the stages, in order.
 */
export default fp(async function pipelinePlugin (app) {
  const { config } = app
  const pipelinesDir = join(resolve(config.CONFIGS_DIR), 'pipelines')
  const runner = new PipelineRunner({
    storage: app.storage,
    backends: app.backends,
    pipelines: await loadPipelines(pipelinesDir),
    pipelinesDir,
    textProviders: createTextProviders({
      eco: { baseUrl: config.LLM_ECO_BASE_URL, model: config.LLM_ECO_MODEL },
      fast: { baseUrl: config.LLM_FAST_BASE_URL, model: config.LLM_FAST_MODEL, apiKey: config.LLM_FAST_API_KEY },
      timeoutMs: config.LLM_TIMEOUT_MS,
      llmSteps: listSetting(config.LLM_STEPS) as TextStep[]
    }),
    publicBaseUrl: config.PUBLIC_BASE_URL,
    logger: app.log
  })
  app.decorate('pipeline', runner)
  // Requests in flight have ended by now; what is left are runs whose client went away.
  app.addHook('onClose', async () => { await runner.close() })
}, { name: 'pipeline', dependencies: ['config', 'storage', 'backends'] })
