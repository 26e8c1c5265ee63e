import { Readable } from 'node:stream'
import type { ReadableStream as WebReadableStream } from 'node:stream/web'
import { decodeDataUriOrBase64 } from '../data-uri.js'
import { BackendFailedError, BackendTimeoutError } from '../errors.js'
import { relayBody } from '../http/relay.js'
import { describeUrl } from '../http/urls.js'
import { parseJson } from '../json.js'

export interface RetryPolicy {
  /** how many times a rate-limited (or, if allowed, transiently failed) call is repeated */
  maxRetries: number
  /** the longest a single wait may be; a server asking for more is not waited for */
  maxDelayMs: number
}

/** What every cloud backend (OpenAI, OpenRouter, Replicate) is configured with. */
export interface CloudBackendOptions {
  baseUrl?: string
  /** the whole generation: every call, every wait for a 429 and every download */
  timeoutMs?: number
  /** how often a 429 is waited out */
  maxRetries?: number
  /** the longest single wait for a 429; a longer Retry-After fails at once */
  maxRetryDelayMs?: number
}

export interface JsonCallOptions {
  /** backend name, used in error messages */
  backend: string
  method: 'GET' | 'POST'
  url: string
  headers?: Record<string, string>
  body?: unknown
  timeoutMs: number
  signal?: AbortSignal | undefined
  retry: RetryPolicy
  /**
   * Only for idempotent calls (polls): network errors and 502/503/504 are
   * repeated too. A POST that may have been accepted must never set this.
   */
  retryTransient?: boolean
  /** lets a backend refuse to wait out a 429 that will not go away (e.g. exhausted quota) */
  isRetryable429?: (body: unknown) => boolean
}

export interface JsonResponse {
  status: number
  headers: Headers
  /** parsed JSON, or null when the body was empty or not JSON */
  body: unknown
  text: string
}

const DEFAULT_BACKOFF_MS = 1000
const TRANSIENT_STATUSES = new Set([502, 503, 504])

/**
 * One JSON call with the retry rules the remote backends share: 429 is
 * repeated after the wait the server asks for (Retry-After, or OpenAI's
 * retry-after-ms); everything else is answered to the caller, who knows the
 * upstream's error shape. Throws only for timeouts (BackendTimeoutError),
 * network failures (BackendFailedError) and the caller's abort (its reason).
 */
export async function callJson (options: JsonCallOptions): Promise<JsonResponse> {
  for (let attempt = 0; ; attempt++) {
    let response: JsonResponse
    try {
      response = await callOnce(options)
    } catch (err) {
      if (!options.retryTransient || attempt >= options.retry.maxRetries || options.signal?.aborted === true) throw err
      await sleep(backoff(attempt, options.retry.maxDelayMs), options.signal)
      continue
    }
    const retryable = (response.status === 429 && (options.isRetryable429?.(response.body) ?? true)) ||
      (options.retryTransient === true && TRANSIENT_STATUSES.has(response.status))
    if (!retryable || attempt >= options.retry.maxRetries) return response
    const asked = retryAfterMs(response.headers)
    if (asked !== null && asked > options.retry.maxDelayMs) return response
    await sleep(asked ?? backoff(attempt, options.retry.maxDelayMs), options.signal)
  }
}

async function callOnce (options: JsonCallOptions): Promise<JsonResponse> {
  const { signal, timeoutSignal } = withTimeout(options.timeoutMs, options.signal)
  const headers: Record<string, string> = { accept: 'application/json', ...options.headers }
  if (options.body !== undefined) headers['content-type'] = 'application/json'
  try {
    const response = await fetch(options.url, {
      method: options.method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal
    })
    const text = await response.text()
    return { status: response.status, headers: response.headers, body: parseJson(text), text }
  } catch (err) {
    throw mapFetchError(err, options, timeoutSignal)
  }
}

export interface StreamFetchOptions {
  backend: string
  url: string
  headers?: Record<string, string>
  timeoutMs: number
  signal?: AbortSignal | undefined
}

/**
 * GETs a file and hands back its body as a stream once the status is known
 * good, so a 403 or 404 fails here and not halfway through storing. The
 * timeout covers the whole download.
 */
export async function fetchStream (options: StreamFetchOptions): Promise<Readable> {
  const { signal, timeoutSignal } = withTimeout(options.timeoutMs, options.signal)
  const what = { ...options, method: 'GET' as const }
  let response: Response
  try {
    response = await fetch(options.url, { headers: options.headers, signal })
  } catch (err) {
    throw mapFetchError(err, what, timeoutSignal)
  }
  if (!response.ok || response.body === null) {
    await response.body?.cancel().catch(() => {})
    throw new BackendFailedError(options.backend, `GET ${describeUrl(options.url)} answered ${response.status}`)
  }
  // The consumer sees backend errors, not undici's AbortError.
  return relayBody(Readable.fromWeb(response.body as WebReadableStream<Uint8Array>), (err) => mapFetchError(err, what, timeoutSignal) as Error)
}

/**
 * Runs a whole generation under one deadline: every call, every wait for a
 * retry and every download share it, so BACKEND_TIMEOUT_MS bounds what a
 * client waits, retries included. Running out is BACKEND_TIMEOUT (504).
 */
export async function * underDeadline<T> (
  backend: string,
  timeoutMs: number,
  outer: AbortSignal | undefined,
  generate: (signal: AbortSignal) => AsyncGenerator<T>
): AsyncGenerator<T> {
  const deadline = AbortSignal.timeout(timeoutMs)
  const signal = outer === undefined ? deadline : AbortSignal.any([outer, deadline])
  try {
    yield * generate(signal)
  } catch (err) {
    // A call that timed out names itself; anything else cut short by the deadline is the deadline.
    if (deadline.aborted && outer?.aborted !== true && !(err instanceof BackendTimeoutError)) {
      throw new BackendTimeoutError(backend, `the generation took longer than ${timeoutMs} ms`)
    }
    throw err
  }
}

function withTimeout (timeoutMs: number, outer?: AbortSignal): { signal: AbortSignal, timeoutSignal: AbortSignal } {
  const timeoutSignal = AbortSignal.timeout(timeoutMs)
  return { signal: outer === undefined ? timeoutSignal : AbortSignal.any([outer, timeoutSignal]), timeoutSignal }
}

function mapFetchError (err: unknown, options: { backend: string, method: string, url: string, signal?: AbortSignal | undefined }, timeoutSignal: AbortSignal): unknown {
  const where = `${options.method} ${describeUrl(options.url)}`
  // A caller's deadline (AbortSignal.timeout) is a timeout too; any other abort keeps its reason.
  const reason: unknown = options.signal?.aborted === true ? options.signal.reason : undefined
  if (timeoutSignal.aborted || (reason instanceof DOMException && reason.name === 'TimeoutError')) {
    return new BackendTimeoutError(options.backend, `${where} took longer than allowed`)
  }
  if (options.signal?.aborted === true) return reason
  const cause = (err as { cause?: { code?: string, message?: string } }).cause
  const detail = cause?.code ?? cause?.message ?? (err instanceof Error ? err.message : String(err))
  return new BackendFailedError(options.backend, `${where}: ${detail}`)
}

/** Milliseconds to wait, from retry-after-ms (OpenAI), Retry-After seconds or an HTTP date; null if absent or unreadable. */
export function retryAfterMs (headers: Headers, now = Date.now()): number | null {
  const ms = Number.parseFloat(headers.get('retry-after-ms') ?? '')
  if (Number.isFinite(ms) && ms >= 0) return Math.ceil(ms)
  const value = headers.get('retry-after')?.trim()
  if (value === undefined || value === '') return null
  if (/^\d+(\.\d+)?$/.test(value)) return Math.ceil(Number(value) * 1000)
  const date = Date.parse(value)
  if (Number.isNaN(date)) return null
  return Math.max(0, date - now)
}

function backoff (attempt: number, maxDelayMs: number): number {
  return Math.min(DEFAULT_BACKOFF_MS * 2 ** attempt, maxDelayMs)
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
export async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted()
  if (ms <= 0) return
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(signal?.reason)
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

export function errorText (value: unknown): string {
  if (typeof value === 'string') return value
  if (value === null || value === undefined) return ''
  return JSON.stringify(value)
}

/** Base64 or a data URI from an upstream answer; garbage there is the backend's failure, not the client's bad input. */
export function decodeUpstreamData (backend: string, text: string): { bytes: Buffer, declared_mime_type: string | null } {
  try {
    return decodeDataUriOrBase64(text)
  } catch (err) {
    throw new BackendFailedError(backend, `it answered undecodable image data (${err instanceof Error ? err.message : String(err)})`)
  }
}
