import got, { TimeoutError } from 'got'
import { BackendFailedError, BackendTimeoutError } from '../errors.js'
import { describeUrl } from '../http/urls.js'
import { isRecord, parseJson } from '../json.js'

const BACKEND = 'llm'

/** Where an OpenAI-compatible chat server lives: baseUrl ends before /chat/completions (e.g. http://localhost:11434/v1). */
export interface LlmEndpoint {
  baseUrl: string
  model: string
  apiKey?: string | undefined
}

export interface LlmClientOptions extends LlmEndpoint {
  /** the whole call; the first call of a local model includes loading it, so be generous */
  timeoutMs: number
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant'
  content: string
}

export interface ChatOptions {
  temperature?: number
  signal?: AbortSignal | undefined
}

export interface ChatAnswer {
  /** the answer without reasoning blocks, trimmed, never empty */
  content: string
  /** the model the server says answered (falls back to the one asked for) */
  model: string
  /** "stop", or "length" when the answer was cut off */
  finish_reason: string | null
  /** what the model wrote inside <think>, if anything */
  thinking: string | null
}

/**
 * A non-streaming chat completion client for Ollama's /v1 API, OpenRouter,
 * OpenAI and the like. Every failure is a coded error for backend "llm":
 * BACKEND_TIMEOUT when no answer came in time, BACKEND_FAILED for the rest,
 * with the server's own error message when it sent one. The caller's abort
 * rejects with the signal's reason.
 */
export class LlmClient {
  readonly model: string
  readonly #url: string
  readonly #apiKey: string | undefined
  readonly #timeoutMs: number

  constructor (options: LlmClientOptions) {
    this.model = options.model
    this.#url = `${options.baseUrl.replace(/\/+$/, '')}/chat/completions`
    if (!isHttpUrl(this.#url)) throw new TypeError(`LLM base URL is not an http(s) URL: ${options.baseUrl}`)
    this.#apiKey = options.apiKey === '' ? undefined : options.apiKey
    this.#timeoutMs = options.timeoutMs
  }

  async chat (messages: ChatMessage[], options: ChatOptions = {}): Promise<ChatAnswer> {
    const where = `POST ${describeUrl(this.#url)}`
    const headers: Record<string, string> = { accept: 'application/json' }
    if (this.#apiKey !== undefined) headers.authorization = `Bearer ${this.#apiKey}`
    let status: number
    let text: string
    try {
      const response = await got.post(this.#url, {
        json: { model: this.model, messages, stream: false, temperature: options.temperature ?? 0.7 },
        headers,
        timeout: { request: this.#timeoutMs },
        retry: { limit: 0 },
        throwHttpErrors: false,
        responseType: 'text',
        signal: options.signal
      })
      status = response.statusCode
      text = response.body
    } catch (err) {
      if (options.signal?.aborted === true) throw options.signal.reason
      if (err instanceof TimeoutError) throw new BackendTimeoutError(BACKEND, `${where} gave no answer within ${this.#timeoutMs} ms`)
      throw new BackendFailedError(BACKEND, `${where}: ${(err as { code?: string }).code ?? String(err)}`)
    }
    const body = parseJson(text)
    if (status >= 400) {
      throw new BackendFailedError(BACKEND, `${where} answered ${status}: ${serverMessage(body) ?? (text.slice(0, 200) || 'no message')}`)
    }
    if (body === null) throw new BackendFailedError(BACKEND, `${where} answered ${status} with something that is not JSON: ${text.slice(0, 100)}`)
    const choice = isRecord(body) && Array.isArray(body.choices) ? body.choices[0] : undefined
    const message = isRecord(choice) ? choice.message : undefined
    const content = isRecord(message) ? message.content : undefined
    const finishReason = isRecord(choice) && typeof choice.finish_reason === 'string' ? choice.finish_reason : null
    if (typeof content !== 'string') {
      const reason = serverMessage(body) ?? `no message content (finish_reason ${finishReason ?? 'none'})`
      throw new BackendFailedError(BACKEND, `${where}: ${reason}`)
    }
    const stripped = stripThinking(content)
    if (stripped.content === '') {
      const why = stripped.thinking === null ? 'the answer was empty' : 'the answer held only the model\'s reasoning'
      throw new BackendFailedError(BACKEND, `${where}: ${why} (finish_reason ${finishReason ?? 'none'})`)
    }
    return {
      content: stripped.content,
      model: isRecord(body) && typeof body.model === 'string' && body.model !== '' ? body.model : this.model,
      finish_reason: finishReason,
      thinking: stripped.thinking
    }
  }
}

/**
 * Removes reasoning from a thinking model's answer: every <think>…</think>
 * block; text before a lone </think> (templates that open the block for the
 * model); and everything from a <think> that is never closed (the answer was
 * cut off while thinking).
 */
export function stripThinking (text: string): { content: string, thinking: string | null } {
  const thinking: string[] = []
  let rest = text.replace(/<think>([\s\S]*?)<\/think>/gi, (_block, inner: string) => {
    thinking.push(inner.trim())
    return ''
  })
  const close = rest.search(/<\/think>/i)
  if (close !== -1) {
    thinking.push(rest.slice(0, close).trim())
    rest = rest.slice(close + '</think>'.length)
  }
  const open = rest.search(/<think>/i)
  if (open !== -1) {
    thinking.push(rest.slice(open + '<think>'.length).trim())
    rest = rest.slice(0, open)
  }
  const thought = thinking.filter((t) => t !== '').join('\n\n')
  return { content: rest.trim(), thinking: thought === '' ? null : thought }
}

// OpenAI: {"error": {"message", "type"}}; Ollama's native API: {"error": "..."}.
function serverMessage (body: unknown): string | null {
  if (!isRecord(body)) return null
  const error = body.error
  if (typeof error === 'string' && error !== '') return error
  if (isRecord(error) && typeof error.message === 'string') {
    return typeof error.type === 'string' && error.type !== '' ? `${error.message} (${error.type})` : error.message
  }
  return null
}

function isHttpUrl (url: string): boolean {
  try {
    return ['http:', 'https:'].includes(new URL(url).protocol)
  } catch {
    return false
  }
}

