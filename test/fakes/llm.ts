import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

/** One request the fake received, body parsed when it was JSON. */
export interface FakeLlmRequest {
  method: string
  path: string
  headers: IncomingHttpHeaders
  body: any
}

export type FakeLlmReply =
  /** a normal answer; delayMs holds it back (for timeouts) */
  | { kind: 'text', content: string, finishReason?: string, model?: string, delayMs?: number }
  /** an HTTP error with the server's error body */
  | { kind: 'error', status: number, message: string, type?: string }
  /** exactly these bytes */
  | { kind: 'raw', status: number, body: string, contentType?: string }
  /** native /api/chat: 200, some of the content, then an {"error"} line (on /v1: a 500) */
  | { kind: 'stream_error', content: string, error: string }
  /** no answer at all until the server closes */
  | { kind: 'hang' }

export type FakeLlmResponder = (request: FakeLlmRequest) => FakeLlmReply | Promise<FakeLlmReply>

/** Ready-made answers for the cases a client has to survive. */
export const llmReplies = {
  text: (content: string, extra: { finishReason?: string, model?: string } = {}): FakeLlmReply => ({ kind: 'text', content, ...extra }),
  withThinking: (thought: string, content: string): FakeLlmReply => ({ kind: 'text', content: `<think>\n${thought}\n</think>\n\n${content}` }),
  garbage: (): FakeLlmReply => ({ kind: 'text', content: 'Well, that depends on what you mean… I would say it is probably fine? 🙂' }),
  slow: (delayMs: number, content = 'eventually'): FakeLlmReply => ({ kind: 'text', content, delayMs }),
  serverError: (message = 'llama runner process has terminated: signal: killed', status = 500): FakeLlmReply =>
    ({ kind: 'error', status, message, type: 'api_error' }),
  never: (): FakeLlmReply => ({ kind: 'hang' })
}

export interface FakeLlmOptions {
  responder?: FakeLlmResponder
  /** models the server has; others get Ollama's 404 `model "x" not found`. Unset: every model exists. */
  models?: string[]
}

export interface FakeLlm {
  /** http://127.0.0.1:port — OpenAI clients use `${url}/v1` as base URL */
  url: string
  requests: FakeLlmRequest[]
  setResponder: (responder: FakeLlmResponder) => void
  close: () => Promise<void>
}

/**
 * A chat server on 127.0.0.1 that speaks what Ollama speaks: the
 * OpenAI-compatible POST /v1/chat/completions (JSON, or SSE with stream:
 * true), the native POST /api/chat (NDJSON stream by default, one object with
 * stream: false, an error line after a 200), GET /v1/models and /api/tags, and
 * 404 for unknown models. By default it echoes the last user message.
 */
export async function startFakeLlm (options: FakeLlmOptions = {}): Promise<FakeLlm> {
  const requests: FakeLlmRequest[] = []
  let responder: FakeLlmResponder = options.responder ?? echo
  const timers = new Set<NodeJS.Timeout>()

  const server = createServer((request, response) => {
    handle(request, response).catch((err: unknown) => {
      if (!response.headersSent) sendJson(response, 500, { error: { message: String(err), type: 'api_error' } })
    })
  })

  async function handle (request: IncomingMessage, response: ServerResponse): Promise<void> {
    const text = await readBody(request)
    const path = (request.url ?? '/').split('?')[0]!
    let body: any = null
    if (text !== '') {
      try {
        body = JSON.parse(text)
      } catch {
        body = text
      }
    }
    const recorded: FakeLlmRequest = { method: request.method ?? 'GET', path, headers: request.headers, body }
    requests.push(recorded)

    if (request.method === 'GET' && path === '/v1/models') {
      sendJson(response, 200, { object: 'list', data: (options.models ?? ['fake-model']).map((id) => ({ id, object: 'model', created: 0, owned_by: 'library' })) })
      return
    }
    if (request.method === 'GET' && path === '/api/tags') {
      sendJson(response, 200, { models: (options.models ?? ['fake-model']).map((name) => ({ name, model: name, size: 0 })) })
      return
    }
    const openAi = request.method === 'POST' && path === '/v1/chat/completions'
    const native = request.method === 'POST' && path === '/api/chat'
    if (!openAi && !native) {
      response.writeHead(404, { 'Content-Type': 'text/plain' }).end('404 page not found')
      return
    }
    if (typeof body !== 'object' || body === null) {
      const message = 'invalid character in request body'
      if (openAi) sendJson(response, 400, { error: { message, type: 'invalid_request_error', param: null, code: null } })
      else sendJson(response, 400, { error: message })
      return
    }
    const model = String(body.model ?? '')
    if (options.models !== undefined && !options.models.includes(model)) {
      const message = `model "${model}" not found, try pulling it first`
      if (openAi) sendJson(response, 404, { error: { message, type: 'api_error', param: null, code: null } })
      else sendJson(response, 404, { error: message })
      return
    }
    const reply = await responder(recorded)
    if (reply.kind === 'hang') return
    if (reply.kind === 'text' && reply.delayMs !== undefined && reply.delayMs > 0) {
      const delivered = await wait(reply.delayMs, response)
      if (!delivered) return
    }
    if (openAi) answerOpenAi(response, body, model, reply)
    else answerNative(response, body, model, reply)
  }

  // Resolves false when the client went away first.
  async function wait (ms: number, response: ServerResponse): Promise<boolean> {
    return await new Promise((resolve) => {
      const timer = setTimeout(() => {
        timers.delete(timer)
        resolve(true)
      }, ms)
      timers.add(timer)
      response.on('close', () => {
        clearTimeout(timer)
        timers.delete(timer)
        resolve(false)
      })
    })
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    setResponder: (next) => { responder = next },
    close: async () => {
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

function echo (request: FakeLlmRequest): FakeLlmReply {
  const messages: Array<{ role: string, content: string }> = Array.isArray(request.body?.messages) ? request.body.messages : []
  const lastUser = [...messages].reverse().find((m) => m.role === 'user')
  return llmReplies.text(lastUser?.content ?? '')
}

function answerOpenAi (response: ServerResponse, body: any, model: string, reply: Exclude<FakeLlmReply, { kind: 'hang' }>): void {
  if (reply.kind === 'error') {
    sendJson(response, reply.status, { error: { message: reply.message, type: reply.type ?? 'api_error', param: null, code: null } })
    return
  }
  if (reply.kind === 'raw') {
    response.writeHead(reply.status, { 'Content-Type': reply.contentType ?? 'application/json' }).end(reply.body)
    return
  }
  if (reply.kind === 'stream_error') {
    sendJson(response, 500, { error: { message: reply.error, type: 'api_error', param: null, code: null } })
    return
  }
  const answeredModel = reply.model ?? model
  const created = Math.floor(Date.now() / 1000)
  const finishReason = reply.finishReason ?? 'stop'
  if (body.stream === true) {
    response.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' })
    for (const piece of pieces(reply.content)) {
      const chunk = { id: 'chatcmpl-fake', object: 'chat.completion.chunk', created, model: answeredModel, system_fingerprint: 'fp_ollama', choices: [{ index: 0, delta: { role: 'assistant', content: piece }, finish_reason: null }] }
      response.write(`data: ${JSON.stringify(chunk)}\n\n`)
    }
    const last = { id: 'chatcmpl-fake', object: 'chat.completion.chunk', created, model: answeredModel, system_fingerprint: 'fp_ollama', choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: finishReason }] }
    response.end(`data: ${JSON.stringify(last)}\n\ndata: [DONE]\n\n`)
    return
  }
  const completionTokens = reply.content.split(/\s+/).length
  sendJson(response, 200, {
    id: 'chatcmpl-fake',
    object: 'chat.completion',
    created,
    model: answeredModel,
    system_fingerprint: 'fp_ollama',
    choices: [{ index: 0, message: { role: 'assistant', content: reply.content }, finish_reason: finishReason }],
    usage: { prompt_tokens: 20, completion_tokens: completionTokens, total_tokens: 20 + completionTokens }
  })
}

function answerNative (response: ServerResponse, body: any, model: string, reply: Exclude<FakeLlmReply, { kind: 'hang' }>): void {
  if (reply.kind === 'error') {
    sendJson(response, reply.status, { error: reply.message })
    return
  }
  if (reply.kind === 'raw') {
    response.writeHead(reply.status, { 'Content-Type': reply.contentType ?? 'application/json' }).end(reply.body)
    return
  }
  const answeredModel = reply.kind === 'text' ? reply.model ?? model : model
  const line = (content: string, extra: Record<string, unknown> = {}): string =>
    `${JSON.stringify({ model: answeredModel, created_at: new Date().toISOString(), message: { role: 'assistant', content }, done: false, ...extra })}\n`
  const finished = { done: true, done_reason: reply.kind === 'text' ? reply.finishReason ?? 'stop' : 'stop', total_duration: 1_000_000, load_duration: 1000, prompt_eval_count: 20, eval_count: 5, eval_duration: 500_000 }
  if (body.stream === false) {
    if (reply.kind === 'stream_error') {
      sendJson(response, 500, { error: reply.error })
      return
    }
    sendJson(response, 200, JSON.parse(line(reply.content, finished)))
    return
  }
  response.writeHead(200, { 'Content-Type': 'application/x-ndjson' })
  const parts = pieces(reply.content)
  if (reply.kind === 'stream_error') {
    for (const piece of parts.slice(0, Math.max(1, Math.floor(parts.length / 2)))) response.write(line(piece))
    response.end(`${JSON.stringify({ error: reply.error })}\n`)
    return
  }
  for (const piece of parts) response.write(line(piece))
  response.end(line('', finished))
}

// Token-ish pieces, spaces kept, as a streaming server sends them.
function pieces (content: string): string[] {
  const parts = content.match(/\s*\S+/g) ?? []
  return parts.length === 0 ? [content] : parts
}

function sendJson (response: ServerResponse, status: number, value: unknown): void {
  const text = JSON.stringify(value)
  response.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) }).end(text)
}

async function readBody (request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of request) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}
