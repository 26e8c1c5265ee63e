import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

/**
 * The part every fake API server shares: an HTTP server on 127.0.0.1 that
 * records each request (body parsed as JSON when it is JSON) before the
 * fake's own routing answers it, and that can answer late without keeping
 * the test process alive after close.
 */

export interface RecordedRequest {
  method: string
  path: string
  headers: IncomingHttpHeaders
  /** the parsed JSON body; null when empty or not JSON */
  body: unknown
}

/** Answers one request; `request` is already in `requests`. A throw becomes a 500. */
export type RecordingHandler = (req: IncomingMessage, res: ServerResponse, request: RecordedRequest) => void | Promise<void>

export interface RecordingServer {
  /** e.g. http://127.0.0.1:1234 */
  url: string
  requests: RecordedRequest[]
  /** runs `fn` after `ms`, unless the server is closed first */
  after: (ms: number, fn: () => void) => void
  close: () => Promise<void>
}

export async function startRecordingServer (handler: RecordingHandler): Promise<RecordingServer> {
  const requests: RecordedRequest[] = []
  const timers = new Set<NodeJS.Timeout>()

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      res.statusCode = 500
      res.end(String(err))
    })
  })

  async function handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] ?? '/'
    const raw = await readBody(req)
    let body: unknown = null
    try {
      body = raw.length > 0 ? JSON.parse(raw.toString('utf8')) : null
    } catch {}
    const request: RecordedRequest = { method: req.method ?? '', path, headers: req.headers, body }
    requests.push(request)
    await handler(req, res, request)
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))

  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    after (ms: number, fn: () => void) {
      const timer = setTimeout(() => {
        timers.delete(timer)
        fn()
      }, ms)
      timers.add(timer)
    },
    async close () {
      for (const timer of timers) clearTimeout(timer)
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

export function sendJson (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers })
  res.end(text)
}

async function readBody (req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}
