import { join, resolve } from 'node:path'
import type { Config } from '../../config.js'
import { OutputConfigError } from '../errors.js'
import type { SharedQueues } from '../generation/queue.js'
import { builtinBackend } from './builtin/backend.js'
import { comfyuiBackend } from './comfyui/backend.js'
import { openaiBackend } from './openai/backend.js'
import { openrouterBackend } from './openrouter/backend.js'
import { loadOutputConfigs } from './output-configs.js'
import { BackendRegistry } from './registry.js'
import { replicateBackend } from './replicate/backend.js'
import type { BackendDeps, BackendFactory } from './types.js'

/** Every backend runstore has, in the order GET /api/backends lists them. */
export const BACKEND_FACTORIES: readonly BackendFactory[] = [builtinBackend, comfyuiBackend, openaiBackend, openrouterBackend, replicateBackend]

/**
 * The registry with every backend and the output configs of
 * `<CONFIGS_DIR>/outputs`. Each config's params are checked by its backend
 * (configured or not), so a broken file stops the start with an
 * OutputConfigError naming it; a config whose backend does not exist is
 * listed as unavailable instead. With `deps.sharedQueues` the queues hold
 * across the instances that share it.
 */
export async function createBackends (config: Config, deps: BackendDeps & { sharedQueues?: SharedQueues | undefined }, factories: readonly BackendFactory[] = BACKEND_FACTORIES): Promise<BackendRegistry> {
  const dir = join(resolve(config.CONFIGS_DIR), 'outputs')
  const outputConfigs = await loadOutputConfigs(dir)
  const registry = new BackendRegistry(outputConfigs, { limit: config.GENERATION_QUEUE_LIMIT, downMs: config.BACKEND_DOWN_MS, shared: deps.sharedQueues })
  for (const factory of factories) {
    const backend = factory.create(config, deps)
    if (backend.name !== factory.name) throw new Error(`the ${factory.name} factory made a backend named ${backend.name}`)
    registry.register(backend, { concurrency: factory.concurrency(config) })
  }
  for (const outputConfig of outputConfigs.values()) {
    try {
      registry.backend(outputConfig.backend)?.validateParams?.(outputConfig.params)
    } catch (err) {
      throw new OutputConfigError(join(dir, `${outputConfig.name}.json`), err instanceof Error ? err.message : String(err))
    }
  }
  return registry
}
