import type { IncomingMessage, ServerResponse } from 'node:http'
import { PNG } from 'pngjs'
import { sendJson, startRecordingServer, type RecordedRequest, type RecordingServer } from './recording-server.js'

export type { RecordedRequest } from './recording-server.js'

/**
 * A fake OpenAI API (Images and Responses) on 127.0.0.1, answering in the
 * shapes the real one uses, including its refusals and rate limits.
 */

export type OpenaiStep =
  | { kind: 'success', revisedPrompt?: string }
  /** legacy DALL·E shape: data[].url pointing at a file this server serves */
  | { kind: 'legacy_url' }
  | { kind: 'moderation_blocked' }
  | { kind: 'rate_limited', retryAfter?: string, retryAfterMs?: string }
  | { kind: 'insufficient_quota' }
  | { kind: 'server_error' }
  /** success, but only after `delayMs` */
  | { kind: 'slow', delayMs: number }
  /** 200 without any image (Images: empty data; Responses: only a text message) */
  | { kind: 'no_image' }
  /** Responses API: the response itself failed */
  | { kind: 'response_failed' }
  /** 200 whose base64 is garbage */
  | { kind: 'bad_base64' }
  /** a proxy in front of the API answers with an HTML page */
  | { kind: 'proxy_error' }
  /** Responses API: a failed call before a completed one, and a message between */
  | { kind: 'mixed_calls' }

export interface FakeOpenai extends Pick<RecordingServer, 'url' | 'requests' | 'close'> {
  /** the base URL a client uses, e.g. http://127.0.0.1:1234/v1 */
  baseUrl: string
  apiKey: string
  /** each API request takes the next step; the last one repeats */
  behave: (...steps: OpenaiStep[]) => void
}

export interface FakeOpenaiOptions {
  apiKey?: string
}

export async function startFakeOpenai (options: FakeOpenaiOptions = {}): Promise<FakeOpenai> {
  const apiKey = options.apiKey ?? 'sk-test-key'
  let steps: OpenaiStep[] = [{ kind: 'success' }]
  const files = new Map<string, Buffer>()
  const server = await startRecordingServer(handle)

  function handle (req: IncomingMessage, res: ServerResponse, { path, body }: RecordedRequest): void {
    if (req.method === 'GET' && path.startsWith('/files/')) {
      const file = files.get(path)
      if (file === undefined) return sendJson(res, 404, { error: { message: 'not found', type: 'invalid_request_error', param: null, code: null } })
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': file.length })
      res.end(file)
      return
    }
    if (req.method !== 'POST' || (path !== '/v1/images/generations' && path !== '/v1/responses')) {
      return sendJson(res, 404, { error: { message: `Invalid URL (${req.method ?? ''} ${path})`, type: 'invalid_request_error', param: null, code: null } })
    }
    if (req.headers.authorization !== `Bearer ${apiKey}`) {
      const given = (req.headers.authorization ?? '').replace(/^Bearer /, '')
      return sendJson(res, 401, {
        error: {
          message: `Incorrect API key provided: ${given.slice(0, 6)}****. You can find your API key at https://platform.openai.com/account/api-keys.`,
          type: 'invalid_request_error',
          param: null,
          code: 'invalid_api_key'
        }
      })
    }
    const step = steps.length > 1 ? steps.shift() as OpenaiStep : steps[0] as OpenaiStep
    const request = (body ?? {}) as Record<string, unknown>
    const responses = path === '/v1/responses'

    switch (step.kind) {
      case 'moderation_blocked':
        return sendJson(res, 400, {
          error: {
            message: 'Your request was rejected as a result of our safety system. Your request may contain content that is not allowed by our safety system.',
            type: 'image_generation_user_error',
            param: null,
            code: 'moderation_blocked'
          }
        })
      case 'rate_limited': {
        const headers: Record<string, string> = {}
        if (step.retryAfter !== undefined) headers['retry-after'] = step.retryAfter
        if (step.retryAfterMs !== undefined) headers['retry-after-ms'] = step.retryAfterMs
        return sendJson(res, 429, {
          error: { message: 'Rate limit reached for gpt-image-1 in organization org-test on images per minute (IPM): Limit 5, Used 5, Requested 1.', type: 'requests', param: null, code: 'rate_limit_exceeded' }
        }, headers)
      }
      case 'insufficient_quota':
        return sendJson(res, 429, {
          error: { message: 'You exceeded your current quota, please check your plan and billing details.', type: 'insufficient_quota', param: null, code: 'insufficient_quota' }
        }, { 'retry-after': '1' })
      case 'server_error':
        return sendJson(res, 500, { error: { message: 'The server had an error while processing your request. Sorry about that!', type: 'server_error', param: null, code: null } })
      case 'slow':
        server.after(step.delayMs, () => {
          if (!res.destroyed) success(res, request, responses, {})
        })
        return
      case 'no_image':
        if (responses) {
          return sendJson(res, 200, responseEnvelope(request, [{
            id: 'msg_0001', type: 'message', status: 'completed', role: 'assistant',
            content: [{ type: 'output_text', annotations: [], text: 'I can describe the picture, but I will not draw it.' }]
          }]))
        }
        return sendJson(res, 200, { created: now(), data: [], usage: usage() })
      case 'response_failed':
        return sendJson(res, 200, { ...responseEnvelope(request, []), status: 'failed', error: { code: 'server_error', message: 'The image could not be generated.' } })
      case 'bad_base64':
        if (responses) return sendJson(res, 200, responseEnvelope(request, [{ id: 'ig_bad', type: 'image_generation_call', status: 'completed', result: 'not base64 at all!' }]))
        return sendJson(res, 200, { created: now(), data: [{ b64_json: '%%%not base64%%%' }], usage: usage() })
      case 'proxy_error':
        res.writeHead(502, { 'content-type': 'text/html' })
        res.end('<html><head><title>502 Bad Gateway</title></head></html>')
        return
      case 'mixed_calls':
        return sendJson(res, 200, responseEnvelope(request, [
          { id: 'ig_failed', type: 'image_generation_call', status: 'failed', result: null },
          { id: 'msg_0001', type: 'message', status: 'completed', role: 'assistant', content: [{ type: 'output_text', annotations: [], text: 'Trying again.' }] },
          { id: 'ig_empty', type: 'image_generation_call', status: 'completed', result: '' },
          { id: 'ig_0002', type: 'image_generation_call', status: 'completed', output_format: 'png', result: makePng(32, 32, [1, 2, 3]).toString('base64') }
        ]))
      case 'legacy_url': {
        const [width, height] = parseSize(request['size'])
        const name = `/files/img-${server.requests.length}.png`
        files.set(name, makePng(width, height, [200, 40, 90]))
        return sendJson(res, 200, { created: now(), data: [{ url: `${server.url}${name}?st=2025-01-01&sig=secret`, revised_prompt: 'a legacy picture' }] })
      }
      case 'success':
        return success(res, request, responses, step.revisedPrompt === undefined ? {} : { revised_prompt: step.revisedPrompt })
    }
  }

  function success (res: ServerResponse, request: Record<string, unknown>, responses: boolean, extra: Record<string, unknown>): void {
    if (responses) {
      const tool = Array.isArray(request['tools']) ? request['tools'][0] as Record<string, unknown> : {}
      const [width, height] = parseSize(tool['size'])
      sendJson(res, 200, responseEnvelope(request, [
        {
          id: 'ig_0001',
          type: 'image_generation_call',
          status: 'completed',
          background: 'opaque',
          output_format: 'png',
          quality: 'medium',
          size: `${width}x${height}`,
          result: makePng(width, height, [30, 120, 220]).toString('base64'),
          revised_prompt: extra['revised_prompt'] ?? `A picture of ${String(request['input'])}`
        },
        { id: 'msg_0001', type: 'message', status: 'completed', role: 'assistant', content: [{ type: 'output_text', annotations: [], text: 'Here is your picture.' }] }
      ]))
      return
    }
    const [width, height] = parseSize(request['size'])
    const n = typeof request['n'] === 'number' ? request['n'] : 1
    const data = Array.from({ length: n }, (_, i) => ({ b64_json: makePng(width, height, [20 + i * 60, 160, 90]).toString('base64'), ...extra }))
    sendJson(res, 200, {
      created: now(),
      background: 'opaque',
      data,
      output_format: 'png',
      quality: request['quality'] ?? 'auto',
      size: `${width}x${height}`,
      usage: usage()
    })
  }

  return {
    url: server.url,
    baseUrl: `${server.url}/v1`,
    apiKey,
    requests: server.requests,
    behave (...next: OpenaiStep[]) {
      steps = next.length > 0 ? next : [{ kind: 'success' }]
    },
    close: server.close
  }
}

function responseEnvelope (request: Record<string, unknown>, output: unknown[]): Record<string, unknown> {
  return {
    id: 'resp_0001',
    object: 'response',
    created_at: now(),
    status: 'completed',
    error: null,
    incomplete_details: null,
    model: `${String(request['model'] ?? 'gpt-4.1')}-2025-04-14`,
    output,
    tool_choice: request['tool_choice'] ?? 'auto',
    tools: request['tools'] ?? [],
    usage: { input_tokens: 12, output_tokens: 80, total_tokens: 92 }
  }
}

function usage (): Record<string, unknown> {
  return { input_tokens: 12, input_tokens_details: { image_tokens: 0, text_tokens: 12 }, output_tokens: 1056, total_tokens: 1068 }
}

function now (): number {
  return Math.floor(Date.now() / 1000)
}

function parseSize (size: unknown): [number, number] {
  const match = typeof size === 'string' ? /^(\d+)x(\d+)$/.exec(size) : null
  return match === null ? [1024, 1024] : [Number(match[1]), Number(match[2])]
}

const pngCache = new Map<string, Buffer>()

/** A real PNG: a solid colour with a diagonal stripe so it is not trivially uniform. */
export function makePng (width: number, height: number, rgb: [number, number, number]): Buffer {
  const key = `${width}x${height}:${rgb.join(',')}`
  const cached = pngCache.get(key)
  if (cached !== undefined) return cached
  const png = new PNG({ width, height })
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const offset = (y * width + x) * 4
      const stripe = Math.abs(x - y) < 4
      png.data[offset] = stripe ? 255 : rgb[0]
      png.data[offset + 1] = stripe ? 255 : rgb[1]
      png.data[offset + 2] = stripe ? 255 : rgb[2]
      png.data[offset + 3] = 255
    }
  }
  const bytes = PNG.sync.write(png, { colorType: 2 })
  pngCache.set(key, bytes)
  return bytes
}
