import { readFileSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { PNG } from 'pngjs'
import { sendJson, startRecordingServer, type RecordedRequest, type RecordingServer } from './recording-server.js'

export type { RecordedRequest } from './recording-server.js'

/**
 * A fake OpenRouter chat-completions endpoint with image output on
 * 127.0.0.1, with the corners of the real one: images only as data URIs whose
 * base64 may be wrapped and whose MIME may lie, 200 answers without images,
 * moderation 403s, and rate limits.
 */

export const FAKE_JPEG = readFileSync(new URL('../fixtures/media/image.jpg', import.meta.url))

export interface FakeImage {
  bytes: Buffer
  /** what the data URI claims; the fake can lie */
  declaredMime: string
  /** wrap the base64 at this many characters with CRLF/LF, like some encoders do */
  wrapAt?: number
}

export type OpenrouterStep =
  | { kind: 'success', images?: FakeImage[] }
  /** one image as a plain https-style URL this server serves */
  | { kind: 'image_url' }
  /** 200, the model declined: no images; content null or some text */
  | { kind: 'no_image', content: string | null, finishReason?: string, nativeFinishReason?: string }
  /** 403 from OpenRouter's moderation; `reasons: null` leaves the list out */
  | { kind: 'moderation_blocked', reasons?: string[] | null }
  /** a sparse answer as some providers give: no id or model, an image entry without a URL, a data URI without a type */
  | { kind: 'sparse' }
  /** a proxy in front of the API answers with an HTML page */
  | { kind: 'proxy_error' }
  | { kind: 'rate_limited', retryAfter?: string }
  | { kind: 'insufficient_credits' }
  /** 200 carrying an error object, as OpenRouter does for some provider failures */
  | { kind: 'error_in_200' }
  | { kind: 'slow', delayMs: number }
  | { kind: 'bad_data_uri' }
  /** 500 with OpenRouter's error body, as when its own service fails */
  | { kind: 'server_error' }

export interface FakeOpenrouter extends Pick<RecordingServer, 'url' | 'requests' | 'close'> {
  /** e.g. http://127.0.0.1:1234/api/v1 */
  baseUrl: string
  apiKey: string
  /** each chat request takes the next step; the last one repeats */
  behave: (...steps: OpenrouterStep[]) => void
}

export async function startFakeOpenrouter (options: { apiKey?: string } = {}): Promise<FakeOpenrouter> {
  const apiKey = options.apiKey ?? 'sk-or-v1-test'
  let steps: OpenrouterStep[] = [{ kind: 'success' }]
  const server = await startRecordingServer(handle)

  function handle (req: IncomingMessage, res: ServerResponse, { path, body }: RecordedRequest): void {
    if (req.method === 'GET' && path === '/files/picture.png') {
      const png = makePng(40, 30)
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': png.length })
      res.end(png)
      return
    }
    if (req.method !== 'POST' || path !== '/api/v1/chat/completions') {
      return sendJson(res, 404, { error: { code: 404, message: 'Not Found' } })
    }
    if (req.headers.authorization !== `Bearer ${apiKey}`) {
      return sendJson(res, 401, { error: { message: 'No auth credentials found', code: 401 } })
    }
    const step = steps.length > 1 ? steps.shift() as OpenrouterStep : steps[0] as OpenrouterStep
    const request = (body ?? {}) as Record<string, unknown>
    const model = typeof request['model'] === 'string' ? request['model'] : 'google/gemini-2.5-flash-image'

    switch (step.kind) {
      case 'success': {
        const images = step.images ?? [{ bytes: makePng(64, 48), declaredMime: 'image/png' }]
        return sendJson(res, 200, completion(model, null, images.map((image, index) => ({
          type: 'image_url',
          image_url: { url: `data:${image.declaredMime};base64,${wrap(image.bytes.toString('base64'), image.wrapAt)}` },
          index
        }))))
      }
      case 'image_url':
        return sendJson(res, 200, completion(model, '', [{ type: 'image_url', image_url: { url: `${server.url}/files/picture.png` } }]))
      case 'no_image':
        return sendJson(res, 200, completion(model, step.content, undefined, step.finishReason, step.nativeFinishReason))
      case 'moderation_blocked': {
        const flagged = String((request['messages'] as Array<{ content: string }> | undefined)?.[0]?.content ?? '').slice(0, 100)
        const reasons = step.reasons === undefined ? { reasons: ['violence/graphic'] } : step.reasons === null ? {} : { reasons: step.reasons }
        return sendJson(res, 403, {
          error: { code: 403, message: 'Input flagged by moderation', metadata: { ...reasons, flagged_input: flagged, provider_name: 'Google', model_slug: model } }
        })
      }
      case 'sparse':
        return sendJson(res, 200, {
          choices: [{ message: { role: 'assistant', content: null, images: [{ type: 'image_url', image_url: {} }, 'junk', { type: 'image_url', image_url: { url: `data:;base64,${makePng(16, 16).toString('base64')}` } }] } }]
        })
      case 'proxy_error':
        res.writeHead(502, { 'content-type': 'text/html' })
        res.end('<html><head><title>502 Bad Gateway</title></head></html>')
        return
      case 'rate_limited':
        return sendJson(res, 429, { error: { code: 429, message: 'Rate limit exceeded: free-models-per-min.', metadata: { headers: { 'X-RateLimit-Limit': '20' } } } },
          step.retryAfter === undefined ? {} : { 'retry-after': step.retryAfter })
      case 'insufficient_credits':
        return sendJson(res, 402, { error: { code: 402, message: 'Insufficient credits. Add more using https://openrouter.ai/credits' } })
      case 'error_in_200':
        return sendJson(res, 200, { error: { code: 502, message: 'Provider returned error', metadata: { provider_name: 'Google', raw: 'upstream overloaded' } } })
      case 'slow':
        server.after(step.delayMs, () => {
          if (!res.destroyed) sendJson(res, 200, completion(model, null, [{ type: 'image_url', image_url: { url: `data:image/png;base64,${makePng(8, 8).toString('base64')}` } }]))
        })
        return
      case 'bad_data_uri':
        return sendJson(res, 200, completion(model, null, [{ type: 'image_url', image_url: { url: 'data:image/png;base64,this is *not* base64' } }]))
      case 'server_error':
        return sendJson(res, 500, { error: { code: 500, message: 'Internal Server Error' } })
    }
  }

  return {
    url: server.url,
    baseUrl: `${server.url}/api/v1`,
    apiKey,
    requests: server.requests,
    behave (...next: OpenrouterStep[]) {
      steps = next.length > 0 ? next : [{ kind: 'success' }]
    },
    close: server.close
  }
}

function completion (model: string, content: string | null, images: unknown[] | undefined, finishReason = 'stop', nativeFinishReason = 'STOP'): Record<string, unknown> {
  const message: Record<string, unknown> = { role: 'assistant', content, refusal: null, reasoning: null }
  if (images !== undefined) message['images'] = images
  return {
    id: 'gen-1760000000-abcdef',
    provider: 'Google AI Studio',
    model,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    choices: [{ logprobs: null, finish_reason: finishReason, native_finish_reason: nativeFinishReason, index: 0, message }],
    usage: { prompt_tokens: 9, completion_tokens: 1290, total_tokens: 1299 }
  }
}

function wrap (base64: string, width: number | undefined): string {
  if (width === undefined) return base64
  const lines: string[] = []
  for (let i = 0; i < base64.length; i += width) lines.push(base64.slice(i, i + width))
  // mixed line endings, as in the wild
  return lines.map((line, i) => i % 2 === 0 ? `${line}\r\n` : `${line}\n`).join('')
}

export function makePng (width: number, height: number): Buffer {
  const png = new PNG({ width, height })
  for (let i = 0; i < width * height; i++) {
    png.data[i * 4] = (i * 7) % 256
    png.data[i * 4 + 1] = 90
    png.data[i * 4 + 2] = (i * 3) % 256
    png.data[i * 4 + 3] = 255
  }
  return PNG.sync.write(png)
}
