import {
  BackendFailedError, BackendUnavailableError, GenerationBlockedError
} from '../../errors.js'
import {
  callJson, decodeUpstreamData, fetchStream, underDeadline, type CloudBackendOptions, type JsonResponse, type RetryPolicy
} from '../http-json.js'
import { isRecord } from '../../json.js'
import { checkParams, matching, nonEmptyString, stringParam, type ParamsSpec } from '../params.js'
import type { BackendFactory, GenerationRequest, GeneratorBackend, MediaItem } from '../types.js'

export interface OpenrouterImageBackendOptions extends CloudBackendOptions {
  apiKey?: string | undefined
  /** sent as HTTP-Referer and X-Title so the usage shows up under the app's name */
  appUrl?: string
  appTitle?: string
}

const DEFAULT_BASE_URL = 'https://openrouter.ai/api/v1'
const DEFAULT_MODEL = 'google/gemini-2.5-flash-image'
const DEFAULT_TIMEOUT_MS = 180_000
const PARAMS: ParamsSpec = {
  model: nonEmptyString,
  aspect_ratio: matching(/^\d+:\d+$/, 'W:H, e.g. "16:9"')
}
// Gemini says why it stopped in native_finish_reason; these mean "refused".
const SAFETY_FINISH_REASONS = new Set(['content_filter', 'safety', 'image_safety', 'prohibited_content', 'blocklist', 'spii', 'recitation', 'image_prohibited_content'])

/** Image generation through OpenRouter's OpenAI-compatible chat endpoint with image output. */
export class OpenrouterImageBackend implements GeneratorBackend {
  readonly name = 'openrouter'
  readonly #apiKey: string | undefined
  readonly #baseUrl: string
  readonly #timeoutMs: number
  readonly #retry: RetryPolicy
  readonly #extraHeaders: Record<string, string>

  constructor (options: OpenrouterImageBackendOptions = {}) {
    this.#apiKey = options.apiKey === '' ? undefined : options.apiKey
    this.#baseUrl = (options.baseUrl ?? DEFAULT_BASE_URL).replace(/\/+$/, '')
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
    this.#retry = { maxRetries: options.maxRetries ?? 2, maxDelayMs: options.maxRetryDelayMs ?? 30_000 }
    this.#extraHeaders = {}
    if (options.appUrl !== undefined) this.#extraHeaders['http-referer'] = options.appUrl
    if (options.appTitle !== undefined) this.#extraHeaders['x-title'] = options.appTitle
  }

  unavailableReason (): string | null {
    return this.#apiKey === undefined ? 'OPENROUTER_API_KEY is not set' : null
  }

  validateParams (params: Record<string, unknown>): void {
    checkParams(this.name, params, PARAMS)
  }

  async * generate (request: GenerationRequest): AsyncGenerator<MediaItem> {
    const reason = this.unavailableReason()
    if (reason !== null) throw new BackendUnavailableError(this.name, reason)
    yield * underDeadline(this.name, this.#timeoutMs, request.signal, (signal) => this.#generate({ ...request, signal }))
  }

  async * #generate (request: GenerationRequest): AsyncGenerator<MediaItem> {
    const requestedModel = stringParam(request.params, 'model') ?? DEFAULT_MODEL
    const body: Record<string, unknown> = {
      model: requestedModel,
      messages: [{ role: 'user', content: request.prompt }],
      modalities: ['image', 'text'],
      seed: request.seed
    }
    const aspectRatio = stringParam(request.params, 'aspect_ratio')
    if (aspectRatio !== undefined) body['image_config'] = { aspect_ratio: aspectRatio }
    const response = await callJson({
      backend: this.name,
      method: 'POST',
      url: `${this.#baseUrl}/chat/completions`,
      headers: { authorization: `Bearer ${this.#apiKey ?? ''}`, ...this.#extraHeaders },
      body,
      timeoutMs: this.#timeoutMs,
      signal: request.signal,
      retry: this.#retry
    })
    if (response.status < 200 || response.status >= 300) throw this.#errorFor(response)
    const answer = isRecord(response.body) ? response.body : {}
    if (isRecord(answer['error'])) throw this.#errorFor(response)

    const model = typeof answer['model'] === 'string' ? answer['model'] : requestedModel
    const generation = typeof answer['id'] === 'string' ? { generation_id: answer['id'] } : {}
    const choice = Array.isArray(answer['choices']) && isRecord(answer['choices'][0]) ? answer['choices'][0] : {}
    const message = isRecord(choice['message']) ? choice['message'] : {}
    const images = Array.isArray(message['images']) ? message['images'] : []
    let yielded = 0
    for (const image of images) {
      const url = isRecord(image) && isRecord(image['image_url']) ? image['image_url']['url'] : undefined
      if (typeof url !== 'string' || url.trim() === '') continue
      if (/^https?:\/\//i.test(url)) {
        const stream = await fetchStream({ backend: this.name, url, timeoutMs: this.#timeoutMs, signal: request.signal })
        yielded++
        yield { body: stream, media_type: 'image', source: { kind: 'openrouter', model, url, ...generation } }
        continue
      }
      const { bytes, declared_mime_type: declared } = decodeUpstreamData(this.name, url)
      yielded++
      yield {
        body: bytes,
        media_type: 'image',
        source: { kind: 'openrouter', model, ...(declared === null ? {} : { declared_mime_type: declared }), ...generation }
      }
    }
    if (yielded > 0) return

    const text = typeof message['content'] === 'string' ? message['content'].trim() : ''
    const said = text === '' ? '' : `; it said: ${text.slice(0, 300)}`
    const finish = [choice['finish_reason'], choice['native_finish_reason']]
      .filter((value): value is string => typeof value === 'string')
    if (finish.some((value) => SAFETY_FINISH_REASONS.has(value.toLowerCase()))) {
      throw new GenerationBlockedError(this.name, `the model declined (${finish.join(', ')})${said}`)
    }
    throw new BackendFailedError(this.name, `the model returned no image${said}`)
  }

  #errorFor (response: JsonResponse): Error {
    const error = isRecord(response.body) && isRecord(response.body['error']) ? response.body['error'] : {}
    const message = typeof error['message'] === 'string' ? error['message'] : (response.text.slice(0, 300) || 'no message')
    const metadata = isRecord(error['metadata']) ? error['metadata'] : {}
    // OpenRouter's own moderation answers 403 and lists its reasons.
    if (Array.isArray(metadata['reasons']) || (response.status === 403 && 'flagged_input' in metadata)) {
      const reasons = Array.isArray(metadata['reasons']) ? metadata['reasons'].filter((r) => typeof r === 'string') : []
      return new GenerationBlockedError(this.name, reasons.length > 0 ? `${message} (${reasons.join(', ')})` : message)
    }
    const status = response.status >= 200 && response.status < 300 && typeof error['code'] === 'number' ? error['code'] : response.status
    return new BackendFailedError(this.name, `HTTP ${status}: ${message}`)
  }
}

export const openrouterBackend: BackendFactory = {
  name: 'openrouter',
  concurrency: (config) => config.BACKEND_CONCURRENCY,
  create: (config) => new OpenrouterImageBackend({ apiKey: config.OPENROUTER_API_KEY, baseUrl: config.OPENROUTER_BASE_URL, timeoutMs: config.BACKEND_TIMEOUT_MS })
}
