import {
  BackendFailedError, BackendUnavailableError, GenerationBlockedError
} from '../../errors.js'
import {
  callJson, decodeUpstreamData, fetchStream, underDeadline, type CloudBackendOptions, type JsonResponse, type RetryPolicy
} from '../http-json.js'
import { isRecord } from '../../json.js'
import { checkParams, integerFrom, matching, nonEmptyString, numberParam, oneOf, stringParam, type ParamsSpec } from '../params.js'
import type { BackendFactory, GenerationRequest, GeneratorBackend, MediaItem } from '../types.js'

export interface OpenaiImageBackendOptions extends CloudBackendOptions {
  apiKey?: string | undefined
}

const DEFAULT_BASE_URL = 'https://api.openai.com/v1'
const DEFAULT_IMAGE_MODEL = 'gpt-image-1'
const DEFAULT_RESPONSES_MODEL = 'gpt-4.1'
const DEFAULT_TIMEOUT_MS = 300_000
const MAX_IMAGES = 10
const BLOCKED_CODES = new Set(['moderation_blocked', 'content_policy_violation'])

const PARAMS: ParamsSpec = {
  api: oneOf('images', 'responses'),
  model: nonEmptyString,
  /** Responses API only: the image model its tool uses */
  image_model: nonEmptyString,
  /** Images API only */
  n: integerFrom(1, MAX_IMAGES),
  size: matching(/^(auto|\d+x\d+)$/, '"auto" or WIDTHxHEIGHT, e.g. "1024x1536"'),
  quality: nonEmptyString,
  background: nonEmptyString,
  moderation: nonEmptyString
}

/**
 * OpenAI image generation, through the Images API (default) or the Responses
 * API's image_generation tool (`params.api: 'responses'`).
 */
export class OpenaiImageBackend implements GeneratorBackend {
  readonly name = 'openai'
  readonly #apiKey: string | undefined
  readonly #baseUrl: string
  readonly #timeoutMs: number
  readonly #retry: RetryPolicy

  constructor (options: OpenaiImageBackendOptions = {}) {
    this.#apiKey = options.apiKey === '' ? undefined : options.apiKey
    this.#baseUrl = (options.baseUrl ?? DEFAULT_BASE_URL).replace(/\/+$/, '')
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
    this.#retry = { maxRetries: options.maxRetries ?? 2, maxDelayMs: options.maxRetryDelayMs ?? 30_000 }
  }

  unavailableReason (): string | null {
    return this.#apiKey === undefined ? 'OPENAI_API_KEY is not set' : null
  }

  validateParams (params: Record<string, unknown>): void {
    checkParams(this.name, params, PARAMS)
  }

  async * generate (request: GenerationRequest): AsyncGenerator<MediaItem> {
    const reason = this.unavailableReason()
    if (reason !== null) throw new BackendUnavailableError(this.name, reason)
    const api = stringParam(request.params, 'api') ?? 'images'
    if (api !== 'images' && api !== 'responses') throw new BackendFailedError(this.name, `unknown api "${api}"; use images or responses`)
    yield * underDeadline(this.name, this.#timeoutMs, request.signal, (signal) =>
      api === 'images' ? this.#viaImagesApi({ ...request, signal }) : this.#viaResponsesApi({ ...request, signal }))
  }

  async * #viaImagesApi (request: GenerationRequest): AsyncGenerator<MediaItem> {
    const model = stringParam(request.params, 'model') ?? DEFAULT_IMAGE_MODEL
    const body: Record<string, unknown> = {
      model,
      prompt: request.prompt,
      n: Math.min(Math.max(Math.round(numberParam(request.params, 'n') ?? 1), 1), MAX_IMAGES),
      size: stringParam(request.params, 'size') ?? allowedSize(request.width, request.height),
      quality: stringParam(request.params, 'quality') ?? 'auto',
      output_format: 'png'
    }
    copyOptional(request.params, body, ['background', 'moderation'])
    const response = await this.#post('/images/generations', body, request.signal)
    const data = isRecord(response) && Array.isArray(response['data']) ? response['data'] : []
    let yielded = 0
    for (const entry of data) {
      if (!isRecord(entry)) continue
      const revised = typeof entry['revised_prompt'] === 'string' ? { revised_prompt: entry['revised_prompt'] } : {}
      if (typeof entry['b64_json'] === 'string' && entry['b64_json'] !== '') {
        yielded++
        yield { body: decodeUpstreamData(this.name, entry['b64_json']).bytes, media_type: 'image', source: { kind: 'openai', model, ...revised } }
      } else if (typeof entry['url'] === 'string') {
        // Legacy DALL·E answers: a signed URL that expires, fetched at once.
        const stream = await fetchStream({ backend: this.name, url: entry['url'], timeoutMs: this.#timeoutMs, signal: request.signal })
        yielded++
        yield { body: stream, media_type: 'image', source: { kind: 'openai', model, url: entry['url'], ...revised } }
      }
    }
    if (yielded === 0) throw new BackendFailedError(this.name, 'the answer held no image')
  }

  async * #viaResponsesApi (request: GenerationRequest): AsyncGenerator<MediaItem> {
    const model = stringParam(request.params, 'model') ?? DEFAULT_RESPONSES_MODEL
    const tool: Record<string, unknown> = {
      type: 'image_generation',
      size: stringParam(request.params, 'size') ?? allowedSize(request.width, request.height),
      quality: stringParam(request.params, 'quality') ?? 'auto',
      output_format: 'png'
    }
    const imageModel = stringParam(request.params, 'image_model')
    if (imageModel !== undefined) tool['model'] = imageModel
    copyOptional(request.params, tool, ['background', 'moderation'])
    const response = await this.#post('/responses', {
      model,
      input: request.prompt,
      tools: [tool],
      // without it the model may answer in words and never call the tool
      tool_choice: { type: 'image_generation' }
    }, request.signal)
    const output = isRecord(response) && Array.isArray(response['output']) ? response['output'] : []
    let yielded = 0
    for (const item of output) {
      if (!isRecord(item) || item['type'] !== 'image_generation_call' || item['status'] !== 'completed') continue
      if (typeof item['result'] !== 'string' || item['result'] === '') continue
      const source = {
        kind: 'openai',
        model,
        ...(imageModel === undefined ? {} : { image_model: imageModel }),
        ...(typeof item['revised_prompt'] === 'string' ? { revised_prompt: item['revised_prompt'] } : {}),
        ...(typeof item['id'] === 'string' ? { call_id: item['id'] } : {})
      }
      yielded++
      yield { body: decodeUpstreamData(this.name, item['result']).bytes, media_type: 'image', source }
    }
    if (yielded === 0) throw new BackendFailedError(this.name, `the answer held no image${describeNoImage(response)}`)
  }

  async #post (path: string, body: unknown, signal: AbortSignal | undefined): Promise<unknown> {
    const response = await callJson({
      backend: this.name,
      method: 'POST',
      url: this.#baseUrl + path,
      headers: { authorization: `Bearer ${this.#apiKey ?? ''}` },
      body,
      timeoutMs: this.#timeoutMs,
      signal,
      retry: this.#retry,
      // an exhausted quota answers 429 too, and waiting does not refill it
      isRetryable429: (answer) => openaiError(answer)?.code !== 'insufficient_quota'
    })
    if (response.status >= 200 && response.status < 300) return response.body
    throw this.#errorFor(response)
  }

  #errorFor (response: JsonResponse): Error {
    const error = openaiError(response.body)
    const message = error?.message ?? (response.text.slice(0, 300) || 'no message')
    if (response.status === 400 && (BLOCKED_CODES.has(error?.code ?? '') || error?.type === 'image_generation_user_error')) {
      return new GenerationBlockedError(this.name, message)
    }
    return new BackendFailedError(this.name, `HTTP ${response.status}: ${message}`)
  }
}

interface OpenaiError {
  message?: string
  type?: string
  code?: string
}

function openaiError (body: unknown): OpenaiError | null {
  if (!isRecord(body) || !isRecord(body['error'])) return null
  const error = body['error']
  const text = (key: string): string | undefined => typeof error[key] === 'string' ? error[key] : undefined
  const result: OpenaiError = {}
  const message = text('message')
  const type = text('type')
  const code = text('code')
  if (message !== undefined) result.message = message
  if (type !== undefined) result.type = type
  if (code !== undefined) result.code = code
  return result
}

/** Why a Responses answer held no image: its error, its status, or what the model said instead. */
function describeNoImage (response: unknown): string {
  if (!isRecord(response)) return ''
  if (isRecord(response['error']) && typeof response['error']['message'] === 'string') return `: ${response['error']['message']}`
  const words: string[] = []
  for (const item of Array.isArray(response['output']) ? response['output'] : []) {
    if (!isRecord(item) || !Array.isArray(item['content'])) continue
    for (const part of item['content']) {
      if (isRecord(part) && typeof part['text'] === 'string') words.push(part['text'])
    }
  }
  if (words.length > 0) return `; the model said: ${words.join(' ').slice(0, 300)}`
  return typeof response['status'] === 'string' ? ` (response status ${response['status']})` : ''
}

/** The GPT image models take three sizes; pick the one closest in shape. */
export function allowedSize (width: number, height: number): string {
  const ratio = width > 0 && height > 0 ? width / height : 1
  if (ratio >= 1.25) return '1536x1024'
  if (ratio <= 0.8) return '1024x1536'
  return '1024x1024'
}

function copyOptional (params: Record<string, unknown>, target: Record<string, unknown>, keys: string[]): void {
  for (const key of keys) {
    const value = stringParam(params, key)
    if (value !== undefined) target[key] = value
  }
}

export const openaiBackend: BackendFactory = {
  name: 'openai',
  concurrency: (config) => config.BACKEND_CONCURRENCY,
  create: (config) => new OpenaiImageBackend({ apiKey: config.OPENAI_API_KEY, baseUrl: config.OPENAI_BASE_URL, timeoutMs: config.BACKEND_TIMEOUT_MS })
}
