import {
  BackendFailedError, BackendTimeoutError, BackendUnavailableError, GenerationBlockedError
} from '../../errors.js'
import {
  callJson, decodeUpstreamData, errorText, fetchStream, sleep, type CloudBackendOptions, type JsonResponse, type RetryPolicy
} from '../http-json.js'
import { isRecord } from '../../json.js'
import { boolean, checkParams, matching, nonEmptyString, object, oneOf, stringParam, type ParamsSpec } from '../params.js'
import type { BackendFactory, GenerationRequest, GeneratorBackend, MediaItem } from '../types.js'

export interface ReplicateBackendOptions extends CloudBackendOptions {
  apiToken?: string | undefined
  /** pause between polls of an unfinished prediction */
  pollIntervalMs?: number
  /** per HTTP call (a create waits `waitSeconds` on top of it) */
  requestTimeoutMs?: number
  /** `Prefer: wait=N`: how long a create may hold the connection for a finished answer, 1–60 */
  waitSeconds?: number
}

const DEFAULT_BASE_URL = 'https://api.replicate.com/v1'
const TERMINAL_STATUSES = new Set(['succeeded', 'failed', 'canceled', 'aborted'])
// Replicate's safety checker and moderation failures (E005) are refusals, not crashes.
const BLOCKED_ERROR = /\bE005\b|NSFW|flagged as sensitive/i
const ASPECT_RATIOS = ['1:1', '16:9', '21:9', '3:2', '2:3', '4:5', '5:4', '3:4', '4:3', '9:16', '9:21']
const MODEL_NAME = /^[\w.-]+\/[\w.-]+$/

const PARAMS: ParamsSpec = {
  /** "owner/name", or "owner/name:version" to pin a version */
  model: matching(/^[\w.-]+\/[\w.-]+(:[\w.-]+)?$/, '"owner/name" or "owner/name:version"'),
  version: nonEmptyString,
  /** the model's own inputs; prompt and seed are always the request's */
  input: object,
  /** how the requested size is sent, if at all */
  size_as: oneOf('aspect_ratio', 'width_height'),
  /** send the negative prompt as input.negative_prompt */
  negative_prompt: boolean
}

interface Prediction {
  id: string
  status: string
  output: unknown
  error: unknown
  getUrl: string | null
  cancelUrl: string | null
}

/**
 * Replicate predictions: create, poll until finished, then stream each output
 * file. A create that timed out may have started a (paid) prediction, so it is
 * never repeated; only a 429, which says it was not accepted, is.
 */
export class ReplicateBackend implements GeneratorBackend {
  readonly name = 'replicate'
  readonly #apiToken: string | undefined
  readonly #baseUrl: string
  readonly #pollIntervalMs: number
  readonly #timeoutMs: number
  readonly #requestTimeoutMs: number
  readonly #waitSeconds: number
  readonly #retry: RetryPolicy

  constructor (options: ReplicateBackendOptions = {}) {
    this.#apiToken = options.apiToken === '' ? undefined : options.apiToken
    this.#baseUrl = (options.baseUrl ?? DEFAULT_BASE_URL).replace(/\/+$/, '')
    this.#pollIntervalMs = options.pollIntervalMs ?? 1000
    this.#timeoutMs = options.timeoutMs ?? 600_000
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 30_000
    this.#waitSeconds = Math.min(Math.max(Math.round(options.waitSeconds ?? 60), 1), 60)
    this.#retry = { maxRetries: options.maxRetries ?? 3, maxDelayMs: options.maxRetryDelayMs ?? 30_000 }
  }

  unavailableReason (): string | null {
    return this.#apiToken === undefined ? 'REPLICATE_API_TOKEN is not set' : null
  }

  validateParams (params: Record<string, unknown>): void {
    checkParams(this.name, params, PARAMS)
    if (params['model'] === undefined && params['version'] === undefined) {
      throw new Error('params.model ("owner/name") or params.version is required')
    }
  }

  async * generate (request: GenerationRequest): AsyncGenerator<MediaItem> {
    const reason = this.unavailableReason()
    if (reason !== null) throw new BackendUnavailableError(this.name, reason)
    const deadline = AbortSignal.timeout(this.#timeoutMs)
    const signal = request.signal === undefined ? deadline : AbortSignal.any([request.signal, deadline])
    const { model, create } = this.#createCall(request)
    let prediction: Prediction | null = null
    try {
      prediction = await this.#create(create, signal)
      while (!TERMINAL_STATUSES.has(prediction.status)) {
        await sleep(this.#pollIntervalMs, signal)
        prediction = await this.#poll(prediction, signal)
      }
      const urls = this.#outputUrls(prediction)
      for (const url of urls) {
        yield await this.#download(url, model, prediction.id, signal)
      }
    } catch (err) {
      if (deadline.aborted && request.signal?.aborted !== true) {
        if (prediction !== null && !TERMINAL_STATUSES.has(prediction.status)) this.#cancel(prediction)
        throw new BackendTimeoutError(this.name, `prediction ${prediction?.id ?? '(not created)'} took longer than ${this.#timeoutMs} ms`)
      }
      if (request.signal?.aborted === true && prediction !== null && !TERMINAL_STATUSES.has(prediction.status)) this.#cancel(prediction)
      throw err
    }
  }

  #createCall (request: GenerationRequest): { model: string, create: { url: string, body: Record<string, unknown> } } {
    const params = request.params
    const input: Record<string, unknown> = {
      ...(isRecord(params['input']) ? params['input'] : {}),
      prompt: request.prompt,
      seed: request.seed
    }
    const sizeAs = stringParam(params, 'size_as')
    if (sizeAs === 'aspect_ratio') input['aspect_ratio'] = nearestAspectRatio(request.width, request.height)
    if (sizeAs === 'width_height') {
      input['width'] = request.width
      input['height'] = request.height
    }
    if (request.negative_prompt !== undefined && request.negative_prompt !== '' && params['negative_prompt'] === true) {
      input['negative_prompt'] = request.negative_prompt
    }
    const model = stringParam(params, 'model')
    // "owner/name:version" works in either field, as in Replicate's own clients.
    const pinned = stringParam(params, 'version') ?? (model?.includes(':') === true ? model : undefined)
    if (pinned !== undefined) {
      const [owner, id] = pinned.includes(':') ? pinned.split(':', 2) as [string, string] : [model ?? '', pinned]
      return {
        model: owner === '' ? id : `${owner}:${id}`,
        create: { url: `${this.#baseUrl}/predictions`, body: { version: id, input } }
      }
    }
    if (model === undefined || !MODEL_NAME.test(model)) {
      throw new BackendFailedError(this.name, `params.model must be "owner/name" (got ${JSON.stringify(params['model'] ?? null)})`)
    }
    return { model, create: { url: `${this.#baseUrl}/models/${model}/predictions`, body: { input } } }
  }

  async #create (create: { url: string, body: Record<string, unknown> }, signal: AbortSignal): Promise<Prediction> {
    const response = await callJson({
      backend: this.name,
      method: 'POST',
      url: create.url,
      headers: { ...this.#auth(), prefer: `wait=${this.#waitSeconds}` },
      body: create.body,
      timeoutMs: this.#requestTimeoutMs + this.#waitSeconds * 1000,
      signal,
      retry: this.#retry
    })
    return this.#predictionFrom(response, 'create')
  }

  async #poll (prediction: Prediction, signal: AbortSignal): Promise<Prediction> {
    const response = await callJson({
      backend: this.name,
      method: 'GET',
      url: this.#sameOrigin(prediction.getUrl) ?? `${this.#baseUrl}/predictions/${encodeURIComponent(prediction.id)}`,
      headers: this.#auth(),
      timeoutMs: this.#requestTimeoutMs,
      signal,
      retry: this.#retry,
      retryTransient: true
    })
    return this.#predictionFrom(response, `poll of ${prediction.id}`)
  }

  /** Best effort: a prediction nobody waits for any more should stop costing money. */
  #cancel (prediction: Prediction): void {
    const url = this.#sameOrigin(prediction.cancelUrl) ?? `${this.#baseUrl}/predictions/${encodeURIComponent(prediction.id)}/cancel`
    callJson({
      backend: this.name,
      method: 'POST',
      url,
      headers: this.#auth(),
      timeoutMs: this.#requestTimeoutMs,
      retry: { maxRetries: 0, maxDelayMs: 0 }
    }).catch(() => {})
  }

  async #download (url: string, model: string, predictionId: string, signal: AbortSignal): Promise<MediaItem> {
    if (url.startsWith('data:')) {
      const { bytes, declared_mime_type: declared } = decodeUpstreamData(this.name, url)
      return { body: bytes, source: { kind: 'replicate', model, prediction_id: predictionId, ...(declared === null ? {} : { declared_mime_type: declared }) } }
    }
    // Files on the delivery host need the token, and vanish about an hour later.
    const body = await fetchStream({ backend: this.name, url, headers: this.#auth(), timeoutMs: this.#timeoutMs, signal })
    return { body, source: { kind: 'replicate', model, prediction_id: predictionId, url } }
  }

  #outputUrls (prediction: Prediction): string[] {
    if (prediction.status !== 'succeeded') {
      const error = errorText(prediction.error)
      if (prediction.status === 'failed') {
        const message = `prediction ${prediction.id} failed: ${error === '' ? 'no error given' : error}`
        throw BLOCKED_ERROR.test(error) ? new GenerationBlockedError(this.name, message) : new BackendFailedError(this.name, message)
      }
      throw new BackendFailedError(this.name, `prediction ${prediction.id} was ${prediction.status}${error === '' ? '' : `: ${error}`}`)
    }
    const strings = collectStrings(prediction.output)
    const urls = strings.filter((value) => /^(https?:\/\/|data:)/i.test(value))
    if (urls.length > 0) return urls
    if (strings.length > 0) {
      throw new BackendFailedError(this.name, `prediction ${prediction.id} returned text, not media: ${strings.join('').slice(0, 300)}`)
    }
    throw new BackendFailedError(this.name, `prediction ${prediction.id} succeeded without any output`)
  }

  #predictionFrom (response: JsonResponse, what: string): Prediction {
    const body = isRecord(response.body) ? response.body : {}
    if (response.status < 200 || response.status >= 300) {
      const detail = errorText(body['detail'])
      const title = typeof body['title'] === 'string' ? body['title'] : ''
      const message = [title, detail].filter((part) => part !== '').join(': ') || response.text.slice(0, 300) || 'no message'
      throw new BackendFailedError(this.name, `${what} answered ${response.status}: ${message}`)
    }
    if (typeof body['id'] !== 'string' || typeof body['status'] !== 'string') {
      throw new BackendFailedError(this.name, `${what} answered something that is not a prediction`)
    }
    const urls = isRecord(body['urls']) ? body['urls'] : {}
    return {
      id: body['id'],
      status: body['status'],
      output: body['output'] ?? null,
      error: body['error'] ?? null,
      getUrl: typeof urls['get'] === 'string' ? urls['get'] : null,
      cancelUrl: typeof urls['cancel'] === 'string' ? urls['cancel'] : null
    }
  }

  /** The token only goes to URLs on the API's own origin; anything else is ignored. */
  #sameOrigin (url: string | null): string | null {
    if (url === null) return null
    try {
      return new URL(url).origin === new URL(this.#baseUrl).origin ? url : null
    } catch {
      return null
    }
  }

  #auth (): Record<string, string> {
    return { authorization: `Bearer ${this.#apiToken ?? ''}` }
  }
}

/** Every string in an output, in order: a URL, a list of URLs, an object of them, or text tokens. */
function collectStrings (output: unknown): string[] {
  if (typeof output === 'string') return [output]
  if (Array.isArray(output)) return output.flatMap(collectStrings)
  if (isRecord(output)) return Object.values(output).flatMap(collectStrings)
  return []
}

function nearestAspectRatio (width: number, height: number): string {
  const wanted = width > 0 && height > 0 ? Math.log(width / height) : 0
  let best = '1:1'
  let bestDistance = Infinity
  for (const ratio of ASPECT_RATIOS) {
    const [w, h] = ratio.split(':').map(Number) as [number, number]
    const distance = Math.abs(Math.log(w / h) - wanted)
    if (distance < bestDistance) {
      best = ratio
      bestDistance = distance
    }
  }
  return best
}

export const replicateBackend: BackendFactory = {
  name: 'replicate',
  concurrency: (config) => config.BACKEND_CONCURRENCY,
  create: (config) => new ReplicateBackend({ apiToken: config.REPLICATE_API_TOKEN, baseUrl: config.REPLICATE_BASE_URL, timeoutMs: config.BACKEND_TIMEOUT_MS })
}
