import t, { type Test } from 'tap'
import { connect, createServer, type Socket } from 'node:net'
import { once } from 'node:events'
import { clientErrorHandler } from '../../plugins/http-protocol.js'
import { build } from '../helper.js'
import { rawExchange, type RawResponse } from '../raw-http.js'

type App = Awaited<ReturnType<typeof build>>

async function listening (t: Test): Promise<{ app: App, port: number }> {
  const app = await build(t)
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, port: (app.server.address() as { port: number }).port }
}

/** One error answer in the contract's shape, on a connection the server closed. */
async function refused (t: Test, port: number, request: string, status: number, code: string): Promise<RawResponse> {
  const { responses, closedByServer } = await rawExchange(port, request)
  t.equal(responses.length, 1, `${code}: one answer`)
  const res = responses[0]!
  t.equal(res.status, status, `${code}: status`)
  t.match(res.headers['content-type'], /^application\/json/, `${code}: JSON`)
  t.equal(res.headers.connection, 'close', `${code}: Connection: close`)
  t.ok(closedByServer, `${code}: the server closed the connection`)
  const body = JSON.parse(res.body)
  t.same(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'], `${code}: {statusCode, error, code, message}`)
  t.match(body, { statusCode: status, code, error: String, message: String }, `${code}: body`)
  return res
}

async function stillUp (t: Test, port: number): Promise<void> {
  const { responses } = await rawExchange(port, 'GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')
  t.same(responses.map((r) => [r.status, r.body]), [[200, '{"status":"ok"}']], 'the server still answers')
}

t.test('what the HTTP parser cannot read is answered as JSON with a code, and the connection closed', async (t) => {
  const { port } = await listening(t)
  const cases: Array<[string, string, number, string, RegExp?]> = [
    ['a bare CR in a header', 'GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n', 400, 'BAD_REQUEST_SYNTAX'],
    ['two Content-Length headers', 'POST /api/runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}', 400, 'BAD_REQUEST_SYNTAX', /Content-Length/],
    ['Content-Length with Transfer-Encoding', 'POST /api/runs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n', 400, 'BAD_REQUEST_SYNTAX'],
    ['an oversized header', `GET /health HTTP/1.1\r\nHost: x\r\nX-A: ${'a'.repeat(20000)}\r\n\r\n`, 431, 'HEADERS_TOO_LARGE', /16384 bytes/],
    ['an unknown method', 'BREW /health HTTP/1.1\r\nHost: x\r\n\r\n', 400, 'BAD_REQUEST_SYNTAX'],
    ['no HTTP at all', 'hello\r\n\r\n', 400, 'BAD_REQUEST_SYNTAX'],
    ['a header without a colon', 'GET /health HTTP/1.1\r\nHost: x\r\nnot a header\r\n\r\n', 400, 'BAD_REQUEST_SYNTAX'],
    ['a NUL in a header value', 'GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n', 400, 'BAD_REQUEST_SYNTAX'],
    ['a chunk size that is not hex', 'POST /api/runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n', 400, 'BAD_REQUEST_SYNTAX'],
    ['oversized chunk extensions', `POST /api/runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2;${'a'.repeat(20000)}\r\n{}\r\n0\r\n\r\n`, 413, 'CHUNK_EXTENSIONS_TOO_LARGE']
  ]
  for (const [name, request, status, code, message] of cases) {
    const res = await refused(t, port, request, status, code)
    if (message !== undefined) t.match(JSON.parse(res.body).message, message, `${name}: the message says why`)
    await stillUp(t, port)
  }
})

t.test('a request cut off by the client is answered the same way', async (t) => {
  const { port } = await listening(t)
  const socket = connect(port, '127.0.0.1')
  await once(socket, 'connect')
  const chunks: Buffer[] = []
  socket.on('data', (chunk) => chunks.push(chunk))
  socket.end('GET /health HTTP/1.1\r\nHost: x\r\nX-A')
  await once(socket, 'close')
  const answer = Buffer.concat(chunks).toString()
  t.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/)
  t.match(answer, /"code":"BAD_REQUEST_SYNTAX"/)
  await stillUp(t, port)
})

t.test('an HTTP/1.1 request without Host gets 400 MISSING_HOST; HTTP/1.0 needs none', async (t) => {
  const { port } = await listening(t)
  await refused(t, port, 'GET /health HTTP/1.1\r\n\r\n', 400, 'MISSING_HOST')
  await refused(t, port, 'POST /api/runs HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}', 400, 'MISSING_HOST')
  const { responses } = await rawExchange(port, 'GET /health HTTP/1.0\r\n\r\n')
  t.same(responses.map((r) => r.status), [200])
  await stillUp(t, port)
})

t.test('an Expect other than 100-continue gets 417 EXPECTATION_FAILED; 100-continue works', async (t) => {
  const { app, port } = await listening(t)
  const res = await refused(t, port, 'GET /health HTTP/1.1\r\nHost: x\r\nExpect: bogus\r\n\r\n', 417, 'EXPECTATION_FAILED')
  t.match(JSON.parse(res.body).message, /"bogus"/)
  const body = JSON.stringify({ schema: 'dada', execution_mode: 'eco', input_text: 'Eine Blume' })
  await refused(t, port, `POST /api/runs HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`, 417, 'EXPECTATION_FAILED')
  t.same((await app.inject({ url: '/api/runs' })).json().runs, [], 'nothing was created')

  const { responses } = await rawExchange(port, `POST /api/runs HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
  t.same(responses.map((r) => r.status), [100, 201])
  await stillUp(t, port)
})

t.test('a request too slow is answered 408; a failed connection gets nothing', async (t) => {
  const app = await build(t)
  // Node's request timeout is checked every 30 s: its error is handed over directly, on a real connection.
  const server = createServer()
  t.teardown(() => server.close())
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as { port: number }).port
  async function answerTo (err: Error & { code?: string }): Promise<string> {
    const client = connect(port, '127.0.0.1')
    const [socket] = await once(server, 'connection') as [Socket]
    const chunks: Buffer[] = []
    client.on('data', (chunk) => chunks.push(chunk))
    client.on('error', () => {})
    clientErrorHandler.call(app, Object.assign(err, { bytesParsed: 0, rawPacket: Buffer.alloc(0) }) as never, socket)
    await once(client, 'close')
    return Buffer.concat(chunks).toString()
  }
  const timeout = await answerTo(Object.assign(new Error('Request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' }))
  t.match(timeout, /^HTTP\/1\.1 408 Request Timeout\r\n/)
  t.match(timeout, /"code":"REQUEST_TIMEOUT"/)
  t.equal(await answerTo(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' })), '', 'a broken connection is closed without an answer')
})
