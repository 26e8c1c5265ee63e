import type { IncomingMessage, ServerResponse } from 'node:http'
import { PNG } from 'pngjs'
import { sendJson, startRecordingServer, type RecordedRequest, type RecordingServer } from './recording-server.js'

export type { RecordedRequest } from './recording-server.js'

/**
 * A fake Replicate HTTP API on 127.0.0.1: predictions that move through
 * their statuses over polls, every output shape, a delivery route that wants
 * the token, and the error bodies `{detail, title, status}`.
 */

export type OutputShape = 'string' | 'array' | 'object' | 'text' | 'null' | 'data_uri'

export interface ReplicateScript {
  /** what the prediction shows at create, then at each poll; the last one stays */
  statuses?: string[]
  /** the output once succeeded */
  output?: OutputShape
  /** the prediction's `error` when it fails */
  error?: string
  /** with `Prefer: wait`, the create answers with the finished prediction */
  finishWithinWait?: boolean
  /** the first N creates get 429 with Retry-After */
  rateLimitCreates?: number
  /** the first N polls get 429 with Retry-After */
  rateLimitPolls?: number
  retryAfter?: string
  /** the first N polls get 503 */
  failPolls?: number
  /** the create is refused with this status and a `{detail, title, status}` body */
  createError?: 401 | 402 | 422 | 500
  /** the prediction is made, but the answer to the create comes only after this long */
  createDelayMs?: number
  /** the prediction is made, then the create's connection is dropped without an answer */
  dropCreate?: boolean
  /** urls.get and urls.cancel point at another host */
  foreignUrls?: boolean
  /** the output URLs point at files that are gone (data removed) */
  filesRemoved?: boolean
  /** the create is answered with exactly this, e.g. a proxy's HTML error page */
  rawCreateAnswer?: { status: number, contentType: string, body: string }
}

export interface FakePrediction {
  id: string
  model: string
  version: string
  input: Record<string, unknown>
  reads: number
  canceled: boolean
  script: ReplicateScript
}

export interface FakeReplicate extends Pick<RecordingServer, 'url' | 'requests' | 'close'> {
  /** e.g. http://127.0.0.1:1234/v1 */
  baseUrl: string
  apiToken: string
  predictions: Map<string, FakePrediction>
  /** how new predictions behave */
  behave: (script: ReplicateScript) => void
  /** requests that created (or tried to create) a prediction */
  creates: () => RecordedRequest[]
}

const TEXT_TOKENS = ['A', ' small', ' red', ' fox', ' in', ' the', ' snow', '.']

export async function startFakeReplicate (options: { apiToken?: string } = {}): Promise<FakeReplicate> {
  const apiToken = options.apiToken ?? 'r8_test_token'
  const predictions = new Map<string, FakePrediction>()
  const files = new Map<string, Buffer>()
  let script: ReplicateScript = {}
  let createCount = 0
  let pollCount = 0
  let nextId = 1
  const server = await startRecordingServer(handle)

  function handle (req: IncomingMessage, res: ServerResponse, { path, body }: RecordedRequest): void {
    const authorized = req.headers.authorization === `Bearer ${apiToken}`

    if (req.method === 'GET' && path.startsWith('/delivery/')) {
      if (!authorized) {
        res.writeHead(403, { 'content-type': 'text/plain' })
        res.end('Forbidden')
        return
      }
      const file = files.get(path)
      if (file === undefined) {
        res.writeHead(404, { 'content-type': 'text/plain' })
        res.end('Not Found')
        return
      }
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': file.length })
      res.end(file)
      return
    }
    if (!authorized) return problem(res, 401, 'Unauthenticated', 'You did not pass a valid authentication token')

    const modelCreate = /^\/v1\/models\/([^/]+)\/([^/]+)\/predictions$/.exec(path)
    if (req.method === 'POST' && (modelCreate !== null || path === '/v1/predictions')) {
      const request = (body ?? {}) as Record<string, unknown>
      return create(req, res, request, modelCreate === null ? null : `${modelCreate[1] ?? ''}/${modelCreate[2] ?? ''}`)
    }
    const cancel = /^\/v1\/predictions\/([^/]+)\/cancel$/.exec(path)
    if (req.method === 'POST' && cancel !== null) {
      const prediction = predictions.get(cancel[1] ?? '')
      if (prediction === undefined) return problem(res, 404, 'Not found', 'The requested resource could not be found.')
      prediction.canceled = true
      return sendJson(res, 200, view(prediction))
    }
    const get = /^\/v1\/predictions\/([^/]+)$/.exec(path)
    if (req.method === 'GET' && get !== null) {
      const prediction = predictions.get(get[1] ?? '')
      if (prediction === undefined) return problem(res, 404, 'Not found', 'The requested resource could not be found.')
      pollCount++
      if (pollCount <= (prediction.script.rateLimitPolls ?? 0)) {
        return problem(res, 429, 'Too Many Requests', 'Request was throttled. Expected available in 1 second.', { 'retry-after': prediction.script.retryAfter ?? '1' })
      }
      if (pollCount <= (prediction.script.rateLimitPolls ?? 0) + (prediction.script.failPolls ?? 0)) {
        return problem(res, 503, 'Service Unavailable', 'upstream connect error')
      }
      prediction.reads++
      return sendJson(res, 200, view(prediction))
    }
    return problem(res, 404, 'Not found', 'The requested resource could not be found.')
  }

  function create (req: IncomingMessage, res: ServerResponse, request: Record<string, unknown>, model: string | null): void {
    createCount++
    const current = script
    if (createCount <= (current.rateLimitCreates ?? 0)) {
      return problem(res, 429, 'Too Many Requests', 'Request was throttled. Your rate limit for creating predictions is reduced while you have less than $5.0 in credit.', { 'retry-after': current.retryAfter ?? '1' })
    }
    if (current.rawCreateAnswer !== undefined) {
      res.writeHead(current.rawCreateAnswer.status, { 'content-type': current.rawCreateAnswer.contentType })
      res.end(current.rawCreateAnswer.body)
      return
    }
    if (current.createError === 422) {
      sendJson(res, 422, {
        detail: '- input.num_outputs: Must be less than or equal to 4\n',
        status: 422,
        title: 'Input validation failed',
        invalid_fields: [{ type: 'less_than_equal', field: 'input.num_outputs', description: 'Must be less than or equal to 4' }]
      })
      return
    }
    if (current.createError !== undefined) {
      const titles = { 401: 'Unauthenticated', 402: 'Insufficient credit', 500: 'Internal Server Error' }
      return problem(res, current.createError, titles[current.createError], current.createError === 402 ? 'You have insufficient credit to run this model.' : 'Something went wrong.')
    }
    const version = typeof request['version'] === 'string' ? request['version'] : '5599ed30703defd1d160a25a63321b4dec97101d98b4674bcc56e41f62f35637'
    const prediction: FakePrediction = {
      id: `pred${String(nextId++).padStart(4, '0')}xyz`,
      model: model ?? 'some-owner/some-model',
      version,
      input: (request['input'] ?? {}) as Record<string, unknown>,
      reads: 0,
      canceled: false,
      script: current
    }
    predictions.set(prediction.id, prediction)
    if (current.finishWithinWait === true && typeof req.headers.prefer === 'string' && /wait/.test(req.headers.prefer)) {
      prediction.reads = (current.statuses ?? defaultStatuses).length
    }
    if (current.dropCreate === true) {
      res.socket?.destroy()
      return
    }
    if (current.createDelayMs !== undefined) {
      server.after(current.createDelayMs, () => {
        if (!res.destroyed) sendJson(res, 201, view(prediction))
      })
      return
    }
    sendJson(res, 201, view(prediction))
  }

  function view (prediction: FakePrediction): Record<string, unknown> {
    const statuses = prediction.script.statuses ?? defaultStatuses
    const status = prediction.canceled ? 'canceled' : statuses[Math.min(prediction.reads, statuses.length - 1)] ?? 'starting'
    const origin = prediction.script.foreignUrls === true ? 'https://api.replicate.invalid' : server.url
    return {
      id: prediction.id,
      model: prediction.model,
      version: prediction.version,
      input: prediction.input,
      logs: status === 'starting' ? '' : 'Using seed: 42\n',
      output: status === 'succeeded' ? output(prediction) : null,
      data_removed: false,
      error: status === 'failed' ? (prediction.script.error ?? 'CUDA out of memory') : null,
      status,
      created_at: '2025-06-01T12:00:00.000Z',
      ...(status === 'starting' ? {} : { started_at: '2025-06-01T12:00:01.000Z' }),
      ...(['succeeded', 'failed', 'canceled'].includes(status) ? { completed_at: '2025-06-01T12:00:03.000Z', metrics: { predict_time: 1.9 } } : {}),
      urls: {
        cancel: `${origin}/v1/predictions/${prediction.id}/cancel`,
        get: `${origin}/v1/predictions/${prediction.id}`,
        stream: `https://stream.replicate.invalid/v1/files/${prediction.id}`,
        web: `https://replicate.com/p/${prediction.id}`
      }
    }
  }

  function output (prediction: FakePrediction): unknown {
    const file = (index: number): string => {
      const path = `/delivery/xezq/${prediction.id}/out-${index}.png`
      if (!files.has(path) && prediction.script.filesRemoved !== true) files.set(path, makePng(48 + index * 16, 32, index))
      return `${server.url}${path}`
    }
    switch (prediction.script.output ?? 'string') {
      case 'string': return file(0)
      case 'array': return [file(0), file(1)]
      case 'object': return { image: file(0), seed: 42, caption: 'a picture', extra: [file(1)] }
      case 'text': return TEXT_TOKENS
      case 'null': return null
      case 'data_uri': return [`data:image/png;base64,${makePng(20, 10, 3).toString('base64')}`]
    }
  }

  return {
    url: server.url,
    baseUrl: `${server.url}/v1`,
    apiToken,
    requests: server.requests,
    predictions,
    behave (next: ReplicateScript) {
      script = next
      createCount = 0
      pollCount = 0
    },
    creates () {
      return server.requests.filter((r) => r.method === 'POST' && /^\/v1\/(models\/[^/]+\/[^/]+\/)?predictions$/.test(r.path))
    },
    close: server.close
  }
}

const defaultStatuses = ['starting', 'processing', 'succeeded']

function problem (res: ServerResponse, status: number, title: string, detail: string, headers: Record<string, string> = {}): void {
  sendJson(res, status, { detail, status, title }, { 'content-type': 'application/problem+json', ...headers })
}

/** A real PNG whose colour depends on `variant`, so two outputs are different files. */
export function makePng (width: number, height: number, variant: number): Buffer {
  const png = new PNG({ width, height })
  for (let i = 0; i < width * height; i++) {
    png.data[i * 4] = (variant * 80) % 256
    png.data[i * 4 + 1] = (i * 5) % 256
    png.data[i * 4 + 2] = 200
    png.data[i * 4 + 3] = 255
  }
  return PNG.sync.write(png)
}
