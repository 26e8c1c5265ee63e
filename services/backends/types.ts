import type { Readable } from 'node:stream'
import type { Config } from '../../config.js'
import type { FetchPolicy } from '../http/address-policy.js'
import type { MediaType } from '../../schemas/media.js'
import type { MediaSourceRecord } from '../../schemas/run.js'

/** What a pipeline asks a generator backend for. */
export interface GenerationRequest {
  /** the run the media is for; backends may use it in filename prefixes, never to write files */
  run_id: string
  prompt: string
  negative_prompt?: string
  /** per-request seed, never shared between requests */
  seed: number
  width: number
  height: number
  /** the output config's own parameters (workflow, model, quality, …) */
  params: Record<string, unknown>
  signal?: AbortSignal
}

/**
 * One piece of generated media. The storage service stores it and decides its
 * type from the bytes; `media_type` is what the backend expects, checked
 * against the bytes.
 */
export interface MediaItem {
  body: Buffer | Readable
  media_type?: MediaType
  source: MediaSourceRecord
}

/**
 * A generator backend yields its media one item at a time; the consumer stores
 * each item before asking for the next, so streams are consumed in order. A
 * backend that fails after some items throws after yielding them: what was
 * yielded is kept, the error is recorded.
 */
export interface GeneratorBackend {
  readonly name: string
  /**
   * true when generating never leaves this process and takes milliseconds
   * (the builtin generator): the pipeline then need not write its trail to
   * disk before generation starts
   */
  readonly inProcess?: boolean
  /** null when usable, else why not (e.g. "COMFYUI_URL is not set") */
  unavailableReason (): string | null
  generate (request: GenerationRequest): AsyncIterable<MediaItem>
  /** a cheap check that the upstream answers */
  health? (): Promise<{ ok: boolean, details?: unknown }>
  /**
   * Optional: the outputs of a job submitted elsewhere (ComfyUI: a prompt
   * queued from its web UI), yielded like `generate` yields them.
   */
  collect? (promptId: string, signal?: AbortSignal): AsyncIterable<MediaItem>
  /**
   * Optional: throws an Error with a plain message (which parameter, what is
   * wrong) when an output config's params cannot work with this backend.
   * Called at start for every output config that names the backend, whether
   * or not the backend is configured.
   */
  validateParams? (params: Record<string, unknown>): void
  close? (): Promise<void>
}

/** What a backend needs from outside the configuration. */
export interface BackendDeps {
  /** the hosts media may be downloaded from; a backend may allow its own upstream */
  fetchPolicy: FetchPolicy
}

/** How one backend is made: each backend's folder exports one, create-backends.ts lists them. */
export interface BackendFactory {
  /** the backend's name, as output configs write it */
  readonly name: string
  /** how many generations may run on it at once */
  concurrency: (config: Config) => number
  create: (config: Config, deps: BackendDeps) => GeneratorBackend
}
