import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { resolve, join } from 'node:path'
import type { Config } from '../config.js'
import { loadOutputConfigs } from '../services/backends/output-configs.js'
import { BackendRegistry } from '../services/backends/registry.js'
import type { GeneratorBackend } from '../services/backends/types.js'

declare module 'fastify' {
  interface FastifyInstance {
    backends: BackendRegistry
  }
}

/** app.backends: the registry the backend plugins register themselves in, with the output configs. */
export default fp(async function backendsPlugin (app) {
  const { config } = app
  const outputConfigs = await loadOutputConfigs(join(resolve(config.CONFIGS_DIR), 'outputs'))
  const registry = new BackendRegistry(outputConfigs, {
    concurrency: (backend) => backend === 'comfyui' ? config.COMFYUI_CONCURRENCY : config.BACKEND_CONCURRENCY,
    limit: config.GENERATION_QUEUE_LIMIT
  })
  app.decorate('backends', registry)
  app.addHook('onClose', async () => { await registry.close() })
}, { name: 'backends', dependencies: ['config'] })

/** A plugin that creates one backend from the configuration and registers it. */
export function backendPlugin (name: string, create: (config: Config, app: FastifyInstance) => GeneratorBackend) {
  return fp(async function registerBackend (app) {
    app.backends.register(create(app.config, app))
  }, { name: `backend-${name}`, dependencies: ['backends', 'storage'] })
}
