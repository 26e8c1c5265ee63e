import { BackendFailedError } from '../../errors.js'
import { checkParams, oneOf, positiveNumber, type ParamsSpec } from '../params.js'
import type { BackendFactory, GenerationRequest, GeneratorBackend, MediaItem } from '../types.js'
import { composeMelody } from './melody.js'
import { paintPicture } from './picture.js'

export interface BuiltinBackendOptions {
  /** the largest width or height it paints; bigger requests are scaled down to fit, keeping their shape */
  maxSide?: number
  maxDurationSeconds?: number
}

const MODEL = 'procedural-v1'
const DEFAULT_SIDE = 512
const DEFAULT_MAX_SIDE = 2048
const MIN_SIDE = 8
const DEFAULT_DURATION_SECONDS = 4
const DEFAULT_MAX_DURATION_SECONDS = 30
const MIN_DURATION_SECONDS = 0.5

const PARAMS: ParamsSpec = {
  media_type: oneOf('image', 'audio'),
  /** audio only; clamped to 0.5 s … maxDurationSeconds */
  duration_seconds: positiveNumber
}

/**
 * Makes pictures and melodies from the prompt and seed alone, so a workshop
 * without network or GPU still gets media, and tests get real files. Same
 * prompt and seed, same bytes.
 */
export class BuiltinBackend implements GeneratorBackend {
  readonly name = 'builtin'
  readonly inProcess = true
  readonly #maxSide: number
  readonly #maxDuration: number

  constructor (options: BuiltinBackendOptions = {}) {
    this.#maxSide = options.maxSide ?? DEFAULT_MAX_SIDE
    this.#maxDuration = options.maxDurationSeconds ?? DEFAULT_MAX_DURATION_SECONDS
  }

  unavailableReason (): string | null {
    return null
  }

  validateParams (params: Record<string, unknown>): void {
    checkParams(this.name, params, PARAMS)
  }

  async * generate (request: GenerationRequest): AsyncGenerator<MediaItem> {
    request.signal?.throwIfAborted()
    const mediaType = request.params['media_type'] ?? 'image'
    if (mediaType === 'image') {
      const [width, height] = fitSize(request.width, request.height, this.#maxSide)
      yield { body: paintPicture(request.prompt, request.seed, width, height), media_type: 'image', source: { kind: 'builtin', model: MODEL } }
      return
    }
    if (mediaType === 'audio') {
      const requested = request.params['duration_seconds']
      const seconds = typeof requested === 'number' && Number.isFinite(requested)
        ? Math.min(Math.max(requested, MIN_DURATION_SECONDS), this.#maxDuration)
        : Math.min(DEFAULT_DURATION_SECONDS, this.#maxDuration)
      yield { body: composeMelody(request.prompt, request.seed, seconds), media_type: 'audio', source: { kind: 'builtin', model: MODEL } }
      return
    }
    throw new BackendFailedError(this.name, `it makes image or audio, not ${String(mediaType)}`)
  }
}

/** The requested size, scaled down to fit `max` with its shape kept; a missing side is the default. */
function fitSize (width: number, height: number, max: number): [number, number] {
  const w = Number.isFinite(width) && width > 0 ? width : DEFAULT_SIDE
  const h = Number.isFinite(height) && height > 0 ? height : DEFAULT_SIDE
  const scale = Math.min(1, max / Math.max(w, h))
  const side = (value: number): number => Math.min(Math.max(Math.round(value * scale), MIN_SIDE), max)
  return [side(w), side(h)]
}

export const builtinBackend: BackendFactory = {
  name: 'builtin',
  concurrency: (config) => config.BACKEND_CONCURRENCY,
  create: () => new BuiltinBackend()
}
