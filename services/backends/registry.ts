import type { MediaType } from '../../schemas/media.js'
import { BackendUnavailableError, OutputConfigNotFoundError } from '../errors.js'
import { GenerationQueue } from '../generation/queue.js'
import type { OutputConfig } from './output-configs.js'
import type { GeneratorBackend } from './types.js'

export interface OutputConfigSummary {
  name: string
  description: string
  media_type: MediaType
  backend: string
  available: boolean
  unavailable_reason: string | null
}

export interface QueueSettings {
  /** generations that may wait per backend */
  limit: number
}

export interface RegisterOptions {
  /** generations that may run at once on this backend */
  concurrency: number
}

/**
 * The generator backends and the output configs that name them. A config
 * whose backend is missing or not configured is listed as unavailable with
 * the reason, and asking for it is a clear error; the service still starts.
 */
export class BackendRegistry {
  readonly #backends = new Map<string, GeneratorBackend>()
  readonly #queues = new Map<string, GenerationQueue>()
  readonly #configs: Map<string, OutputConfig>
  readonly #queueSettings: QueueSettings

  constructor (configs: Map<string, OutputConfig>, queueSettings: QueueSettings = { limit: 100 }) {
    this.#configs = configs
    this.#queueSettings = queueSettings
  }

  register (backend: GeneratorBackend, options: RegisterOptions): void {
    if (this.#backends.has(backend.name)) throw new Error(`backend ${backend.name} is registered twice`)
    this.#backends.set(backend.name, backend)
    this.#queues.set(backend.name, new GenerationQueue(backend.name, {
      concurrency: options.concurrency,
      limit: this.#queueSettings.limit
    }))
  }

  backend (name: string): GeneratorBackend | undefined {
    return this.#backends.get(name)
  }

  get backends (): GeneratorBackend[] {
    return [...this.#backends.values()]
  }

  queue (backendName: string): GenerationQueue {
    const queue = this.#queues.get(backendName)
    if (queue === undefined) throw new Error(`no backend named ${backendName}`)
    return queue
  }

  outputConfig (name: string): OutputConfig {
    const config = this.#configs.get(name)
    if (config === undefined) throw new OutputConfigNotFoundError(name.slice(0, 100))
    return config
  }

  hasOutputConfig (name: string): boolean {
    return this.#configs.has(name)
  }

  /** The config with its backend and queue, or BACKEND_UNAVAILABLE (503) saying why not. */
  resolve (configName: string): { config: OutputConfig, backend: GeneratorBackend, queue: GenerationQueue } {
    const config = this.outputConfig(configName)
    const reason = this.#unavailableReason(config)
    if (reason !== null) throw new BackendUnavailableError(config.backend, reason)
    return { config, backend: this.#backends.get(config.backend)!, queue: this.queue(config.backend) }
  }

  listOutputConfigs (): OutputConfigSummary[] {
    return [...this.#configs.values()].map((config) => {
      const reason = this.#unavailableReason(config)
      return {
        name: config.name,
        description: config.description,
        media_type: config.media_type,
        backend: config.backend,
        available: reason === null,
        unavailable_reason: reason
      }
    })
  }

  async close (): Promise<void> {
    await Promise.all(this.backends.map(async (b) => await b.close?.()))
  }

  #unavailableReason (config: OutputConfig): string | null {
    const backend = this.#backends.get(config.backend)
    if (backend === undefined) return `no backend named ${config.backend}`
    return backend.unavailableReason()
  }
}
