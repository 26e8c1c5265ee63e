import type { MediaType } from '../../schemas/media.js'
import { BackendUnavailableError, isCodedError, OutputConfigNotFoundError } from '../errors.js'
import { GenerationQueue, type SharedQueues } from '../generation/queue.js'
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
  /** how long a backend whose generation failed counts as down, in ms; 0: never */
  downMs?: number
  /** the clock failures are timed with, in ms; Date.now() when not given */
  now?: () => number
  /** the slots and lines shared with other instances; this process alone when not given */
  shared?: SharedQueues | undefined
}

/** Why an output config cannot run now: no key or URL, its backend failed recently, or its queue is full. */
export type SkipReason = 'not_configured' | 'down' | 'queue_full'

/** Whether an output config can run now, and if not, why (in words for a person, too). */
export type Availability =
  | { available: true }
  | { available: false, reason: SkipReason, backend: string, detail: string }

// A failure of the upstream itself (502 BACKEND_FAILED, 504 BACKEND_TIMEOUT, …), not a refusal of the prompt
// (403) or the store's own trouble (507, 503): only those make a backend "down".
const UPSTREAM_FAILURES = new Set([502, 504])

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
  /** when each backend's last generation failed, while no later one succeeded */
  readonly #failedAt = new Map<string, { at: number, code: string }>()

  constructor (configs: Map<string, OutputConfig>, queueSettings: QueueSettings = { limit: 100 }) {
    this.#configs = configs
    this.#queueSettings = queueSettings
  }

  register (backend: GeneratorBackend, options: RegisterOptions): void {
    if (this.#backends.has(backend.name)) throw new Error(`backend ${backend.name} is registered twice`)
    this.#backends.set(backend.name, backend)
    this.#queues.set(backend.name, new GenerationQueue(backend.name, {
      concurrency: options.concurrency,
      limit: this.#queueSettings.limit,
      shared: this.#queueSettings.shared?.line(backend.name, options.concurrency)
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

  /**
   * Whether `configName` could run now: configured, not failed within
   * BACKEND_DOWN_MS, and with room in its queue (nothing is reserved).
   */
  availability (configName: string): Availability {
    const config = this.outputConfig(configName)
    const notConfigured = this.#unavailableReason(config)
    if (notConfigured !== null) return { available: false, reason: 'not_configured', backend: config.backend, detail: notConfigured }
    const down = this.#downDetail(config.backend)
    if (down !== null) return { available: false, reason: 'down', backend: config.backend, detail: down }
    const queue = this.queue(config.backend)
    if (queue.full) return { available: false, reason: 'queue_full', backend: config.backend, detail: `${queue.running} running and ${queue.waiting} waiting, no room for more` }
    return { available: true }
  }

  /** Tells the registry how a generation on `backendName` ended: a failure of the upstream marks it down for BACKEND_DOWN_MS, a success clears that. */
  noteGeneration (backendName: string, error: unknown): void {
    if (error === null || error === undefined) {
      this.#failedAt.delete(backendName)
      return
    }
    if (isCodedError(error) && UPSTREAM_FAILURES.has(error.statusCode)) this.#failedAt.set(backendName, { at: this.#now(), code: error.code })
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

  #now (): number {
    return (this.#queueSettings.now ?? Date.now)()
  }

  #downDetail (backendName: string): string | null {
    const failed = this.#failedAt.get(backendName)
    const downMs = this.#queueSettings.downMs ?? 0
    if (failed === undefined || downMs === 0) return null
    const ago = this.#now() - failed.at
    if (ago >= downMs) return null
    return `its last generation failed ${Math.round(ago / 1000)} s ago (${failed.code}); it is tried again ${Math.ceil((downMs - ago) / 1000)} s from now`
  }

  #unavailableReason (config: OutputConfig): string | null {
    const backend = this.#backends.get(config.backend)
    if (backend === undefined) return `no backend named ${config.backend}`
    return backend.unavailableReason()
  }
}
