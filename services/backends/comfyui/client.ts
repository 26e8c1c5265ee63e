import type { Readable } from 'node:stream'
import got, { RequestError, TimeoutError, type Request } from 'got'
import WebSocket from 'ws'
import { BackendFailedError, BackendTimeoutError, ComfyuiFileMissingError, ComfyuiPromptNotFoundError } from '../../errors.js'
import { relayBody } from '../../http/relay.js'
import { isRecord, parseJson } from '../../json.js'
import {
  COMFYUI, describeFile, describeNodeErrors, describeRejection,
  type ComfyuiFileRef, type ComfyuiHistoryEntry, type ComfyuiWorkflow
} from './protocol.js'

const LOWERCASE_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

export interface ComfyuiClientOptions {
  /** e.g. http://127.0.0.1:8188 or https://lab.example/comfy/ */
  baseUrl: string
  timeouts?: {
    /** one HTTP request (and the time to the first byte of a download) */
    request?: number
    /** from the start of waiting until the prompt's history exists */
    overall?: number
  }
  /** how often /history is asked while waiting; the WebSocket only makes the answer come sooner */
  pollIntervalMs?: number
  /** listen on /ws for the end of the prompt (default true); polling works without it */
  useWebSocket?: boolean
  /** resubmissions of the same prompt_id after a network error (default 2) */
  submitRetries?: number
  /** consecutive failed polls tolerated before giving up (default 5) */
  maxPollFailures?: number
}

export interface SubmitResult {
  prompt_id: string
  /** queue number; null when the server already had our prompt_id (409 on a resubmission) */
  number: number | null
}

export type QueuePlace = 'running' | 'pending' | null

/**
 * A small ComfyUI client. It sends its own prompt_id so that a POST that timed
 * out can be resent safely, never sends an Origin header (ComfyUI answers 403
 * when it does not match Host), and treats the WebSocket only as a hint: the
 * history, polled, is the truth.
 */
export class ComfyuiClient {
  readonly baseUrl: string
  readonly #base: URL
  readonly #requestMs: number
  readonly #overallMs: number
  readonly #pollIntervalMs: number
  readonly #useWebSocket: boolean
  readonly #submitRetries: number
  readonly #maxPollFailures: number

  constructor (options: ComfyuiClientOptions) {
    this.#base = new URL(options.baseUrl.endsWith('/') ? options.baseUrl : options.baseUrl + '/')
    if (this.#base.protocol !== 'http:' && this.#base.protocol !== 'https:') {
      throw new TypeError(`ComfyUI base URL must be http(s), got ${options.baseUrl}`)
    }
    this.baseUrl = this.#base.href
    this.#requestMs = options.timeouts?.request ?? 30_000
    this.#overallMs = options.timeouts?.overall ?? 10 * 60_000
    this.#pollIntervalMs = options.pollIntervalMs ?? 1000
    this.#useWebSocket = options.useWebSocket ?? true
    this.#submitRetries = options.submitRetries ?? 2
    this.#maxPollFailures = options.maxPollFailures ?? 5
  }

  /** Queues an API-format workflow under our own prompt_id. */
  async submit (workflow: ComfyuiWorkflow, ids: { promptId: string, clientId: string }): Promise<SubmitResult> {
    const promptId = ids.promptId.toLowerCase()
    if (!LOWERCASE_UUID.test(promptId)) throw new TypeError(`prompt_id must be a UUID, got ${ids.promptId}`)
    const body = { prompt: workflow, client_id: ids.clientId, prompt_id: promptId }
    for (let attempt = 0; ; attempt++) {
      let response
      try {
        response = await this.#request('POST', 'prompt', { json: body })
      } catch (err) {
        // The server may have queued it before the connection broke: resending
        // the same prompt_id either queues it or answers 409.
        if (attempt < this.#submitRetries && err instanceof RequestError) continue
        throw this.#requestFailure(err, 'POST /prompt')
      }
      const { statusCode, body: text } = response
      if (statusCode === 409) return { prompt_id: promptId, number: null }
      const answer = parseJson(text)
      if (statusCode === 400 && isRecord(answer)) {
        throw new BackendFailedError(COMFYUI, `ComfyUI rejected the workflow: ${describeRejection(answer)}`)
      }
      if (statusCode !== 200 || !isRecord(answer)) {
        throw new BackendFailedError(COMFYUI, `POST /prompt answered ${statusCode}: ${snippet(text)}`)
      }
      // Old servers ignore our prompt_id and choose their own.
      const queuedId = typeof answer.prompt_id === 'string' ? answer.prompt_id : promptId
      const dropped = describeNodeErrors(answer.node_errors)
      if (dropped.length > 0) {
        // The rest of the graph would still run; nobody would collect it.
        await this.cancel(queuedId).catch(() => {})
        throw new BackendFailedError(COMFYUI, `ComfyUI dropped outputs that failed validation: ${dropped.join('; ')}`)
      }
      return { prompt_id: queuedId, number: typeof answer.number === 'number' ? answer.number : null }
    }
  }

  /**
   * Waits until the prompt's history entry exists and returns it, also when
   * the execution failed (its outputs so far are listed there). The WebSocket
   * event `executing` with `node: null` wakes the wait early; `execution_success`
   * does not, because ComfyUI sends it before it writes the history.
   */
  async waitForCompletion (promptId: string, clientId: string, signal?: AbortSignal): Promise<ComfyuiHistoryEntry> {
    return await this.#waitFor(promptId, this.#useWebSocket ? clientId : null, signal)
  }

  /** The history entry of a prompt someone else submitted, waiting for it if it is still queued or running. */
  async collectOutputs (promptId: string, signal?: AbortSignal): Promise<ComfyuiHistoryEntry> {
    const state = await this.#check(promptId, this.#requestMs)
    if (state.kind === 'done') return state.entry
    if (state.kind === 'lost') throw new ComfyuiPromptNotFoundError(promptId)
    // Its events go to the submitter's socket, not ours: poll only.
    return await this.#waitFor(promptId, null, signal)
  }

  /** The finished entry, or null while queued, running or unknown (ComfyUI answers {} for all three). */
  async history (promptId: string, timeoutMs = this.#requestMs): Promise<ComfyuiHistoryEntry | null> {
    const answer = await this.#getJson(`history/${encodeURIComponent(promptId)}`, timeoutMs)
    const entry = answer[promptId]
    if (!isRecord(entry)) return null
    return { ...entry, outputs: isRecord(entry.outputs) ? entry.outputs as ComfyuiHistoryEntry['outputs'] : {} }
  }

  async queuePlace (promptId: string, timeoutMs = this.#requestMs): Promise<QueuePlace> {
    const queue = await this.#getJson('queue', timeoutMs)
    const holds = (list: unknown): boolean => Array.isArray(list) && list.some((item) => Array.isArray(item) && item[1] === promptId)
    if (holds(queue.queue_running)) return 'running'
    if (holds(queue.queue_pending)) return 'pending'
    return null
  }

  /**
   * Waits until ComfyUI holds fewer than `room` prompts, running and
   * queued, asking /queue every poll interval, for at most the overall
   * timeout (then the caller submits anyway and ComfyUI queues it). An
   * answer that cannot be read ends the wait: submitting tells what is wrong.
   */
  async waitForRoom (room: number, signal?: AbortSignal): Promise<void> {
    const deadline = Date.now() + this.#overallMs
    const alarm = new Alarm()
    for (;;) {
      signal?.throwIfAborted()
      let held: number
      try {
        const queue = await this.#getJson('queue', this.#requestMs)
        held = [queue.queue_running, queue.queue_pending].reduce<number>((sum, list) => sum + (Array.isArray(list) ? list.length : 0), 0)
      } catch {
        return
      }
      if (held < room || Date.now() >= deadline) return
      await alarm.wait(Math.min(this.#pollIntervalMs, Math.max(0, deadline - Date.now())), signal)
    }
  }

  /** Removes the prompt from the queue, or interrupts it if it is the one running. */
  async cancel (promptId: string): Promise<void> {
    await this.#checked(await this.#request('POST', 'queue', { json: { delete: [promptId] } }), 'POST /queue')
    if (await this.queuePlace(promptId) === 'running') {
      // Servers that predate the prompt_id field interrupt whatever runs; we just saw it is ours.
      await this.#checked(await this.#request('POST', 'interrupt', { json: { prompt_id: promptId } }), 'POST /interrupt')
    }
  }

  /** The file's original bytes as a stream (no `preview`, which re-encodes). */
  async download (file: Pick<ComfyuiFileRef, 'filename' | 'subfolder' | 'type'>, signal?: AbortSignal): Promise<Readable> {
    const url = this.#url('view')
    url.searchParams.set('filename', file.filename)
    url.searchParams.set('subfolder', file.subfolder)
    url.searchParams.set('type', file.type)
    const stream: Request = got.stream(url, {
      throwHttpErrors: false,
      retry: { limit: 0 },
      timeout: { connect: this.#requestMs, response: this.#requestMs, socket: this.#requestMs },
      ...(signal ? { signal } : {})
    })
    let statusCode: number
    try {
      statusCode = await new Promise<number>((resolve, reject) => {
        stream.once('response', (response: { statusCode: number }) => resolve(response.statusCode))
        stream.once('error', reject)
      })
    } catch (err) {
      stream.destroy()
      if (signal?.aborted) throw signal.reason
      throw this.#requestFailure(err, `GET /view ${describeFile(file)}`)
    }
    if (statusCode === 200) {
      // A body that breaks off is ComfyUI's failure (502/504), not a bad upload by whoever stores it.
      const what = `GET /view ${describeFile(file)}`
      return relayBody(stream, (err) => signal?.aborted === true ? signal.reason as Error : this.#requestFailure(err, what))
    }
    stream.destroy()
    if (statusCode === 404) throw new ComfyuiFileMissingError(describeFile(file))
    throw new BackendFailedError(COMFYUI, `GET /view ${describeFile(file)} answered ${statusCode}`)
  }

  /** GET /system_stats: version, OS, devices. */
  async systemStats (): Promise<Record<string, unknown>> {
    return await this.#getJson('system_stats', this.#requestMs)
  }

  async #waitFor (promptId: string, clientId: string | null, signal?: AbortSignal): Promise<ComfyuiHistoryEntry> {
    const deadline = Date.now() + this.#overallMs
    const alarm = new Alarm()
    const socket = clientId === null ? null : this.#listen(clientId, promptId, alarm)
    let failures = 0
    try {
      for (;;) {
        signal?.throwIfAborted()
        const remaining = deadline - Date.now()
        if (remaining <= 0) break
        try {
          const state = await this.#check(promptId, Math.min(this.#requestMs, remaining))
          if (state.kind === 'done') return state.entry
          if (state.kind === 'lost') {
            throw new BackendFailedError(COMFYUI, `prompt ${promptId} left the queue without a history entry (deleted, or ComfyUI restarted)`)
          }
          failures = 0
        } catch (err) {
          if (!isTransient(err) || ++failures >= this.#maxPollFailures) throw err
        }
        await alarm.wait(Math.min(this.#pollIntervalMs, Math.max(0, deadline - Date.now())), signal)
      }
    } finally {
      socket?.terminate()
    }
    throw new BackendTimeoutError(COMFYUI, `prompt ${promptId} did not finish within ${this.#overallMs} ms`)
  }

  async #check (promptId: string, timeoutMs: number): Promise<{ kind: 'done', entry: ComfyuiHistoryEntry } | { kind: 'waiting' | 'lost' }> {
    const entry = await this.history(promptId, timeoutMs)
    if (entry) return { kind: 'done', entry }
    if (await this.queuePlace(promptId, timeoutMs) !== null) return { kind: 'waiting' }
    // ComfyUI writes the history and takes the prompt off the queue in one
    // step, so a prompt that finished between our two requests is there now.
    const late = await this.history(promptId, timeoutMs)
    return late ? { kind: 'done', entry: late } : { kind: 'lost' }
  }

  #listen (clientId: string, promptId: string, alarm: Alarm): WebSocket {
    const url = this.#url('ws')
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
    url.searchParams.set('clientId', clientId)
    const socket = new WebSocket(url, { handshakeTimeout: this.#requestMs })
    // A socket that fails, is refused (404) or drops only costs latency: polling goes on.
    socket.on('error', () => {})
    // The prompt may have ended between the first poll and the connection.
    socket.on('open', () => alarm.ring())
    socket.on('message', (data, isBinary) => {
      if (isBinary) return
      const message = parseJson(data.toString())
      if (!isRecord(message) || message.type !== 'executing' || !isRecord(message.data)) return
      const { node, prompt_id: id } = message.data
      if (node === null && (id === undefined || id === promptId)) alarm.ring()
    })
    return socket
  }

  #url (path: string): URL {
    return new URL(path, this.#base)
  }

  async #request (method: 'GET' | 'POST', path: string, options: { json?: unknown, timeoutMs?: number } = {}): Promise<{ statusCode: number, body: string }> {
    const response = await got(this.#url(path), {
      method,
      ...(options.json === undefined ? {} : { json: options.json }),
      responseType: 'text',
      throwHttpErrors: false,
      retry: { limit: 0 },
      timeout: { request: options.timeoutMs ?? this.#requestMs }
    })
    return { statusCode: response.statusCode, body: response.body }
  }

  async #getJson (path: string, timeoutMs: number): Promise<Record<string, unknown>> {
    let response
    try {
      response = await this.#request('GET', path, { timeoutMs })
    } catch (err) {
      throw this.#requestFailure(err, `GET /${path}`)
    }
    this.#checked(response, `GET /${path}`)
    const answer = parseJson(response.body)
    if (!isRecord(answer)) throw transient(new BackendFailedError(COMFYUI, `GET /${path} answered ${snippet(response.body)}, not a JSON object`))
    return answer
  }

  #checked (response: { statusCode: number, body: string }, what: string): void {
    if (response.statusCode >= 200 && response.statusCode < 300) return
    const err = new BackendFailedError(COMFYUI, `${what} answered ${response.statusCode}: ${snippet(response.body)}`)
    throw response.statusCode >= 500 ? transient(err) : err
  }

  #requestFailure (err: unknown, what: string): Error {
    if (err instanceof TimeoutError) return transient(new BackendTimeoutError(COMFYUI, `${what} at ${this.baseUrl}: ${err.message}`))
    if (err instanceof RequestError) return transient(new BackendFailedError(COMFYUI, `${what} at ${this.baseUrl}: ${err.message}`))
    return err instanceof Error ? err : new Error(String(err))
  }
}

// Polls that fail for a reason that may pass (network, 5xx, a proxy's HTML page).
const transientErrors = new WeakSet<Error>()

function transient<E extends Error> (err: E): E {
  transientErrors.add(err)
  return err
}

function isTransient (err: unknown): boolean {
  return err instanceof Error && transientErrors.has(err)
}

/** A sleep that a WebSocket event can cut short; a ring while nobody waits is kept for the next wait. */
class Alarm {
  #rung = false
  #wake: (() => void) | null = null

  ring (): void {
    this.#rung = true
    this.#wake?.()
  }

  async wait (ms: number, signal?: AbortSignal): Promise<void> {
    if (!this.#rung) {
      await new Promise<void>((resolve, reject) => {
        const settle = (): void => {
          clearTimeout(timer)
          signal?.removeEventListener('abort', onAbort)
          this.#wake = null
        }
        const done = (): void => {
          settle()
          resolve()
        }
        const onAbort = (): void => {
          settle()
          reject(signal?.reason)
        }
        const timer = setTimeout(done, ms)
        this.#wake = done
        signal?.addEventListener('abort', onAbort, { once: true })
      })
    }
    this.#rung = false
  }
}

function snippet (text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim()
  if (flat === '') return '(empty body)'
  return flat.length > 200 ? flat.slice(0, 200) + '…' : flat
}
