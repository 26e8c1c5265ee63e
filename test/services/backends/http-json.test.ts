import t, { type Test } from 'tap'
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import {
  callJson, decodeUpstreamData, errorText, fetchStream, retryAfterMs, sleep
} from '../../../services/backends/http-json.js'
import { describeUrl } from '../../../services/http/urls.js'
import { BackendFailedError, BackendTimeoutError } from '../../../services/errors.js'

/** A server whose answers are scripted per request; returns its base URL and the number of requests seen. */
async function scripted (t: Test, answers: Array<(res: ServerResponse) => void>): Promise<{ url: string, count: () => number }> {
  let seen = 0
  const server = createServer((req, res) => {
    req.resume()
    const answer = answers[Math.min(seen, answers.length - 1)] as (res: ServerResponse) => void
    seen++
    answer(res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, count: () => seen }
}

const retry = { maxRetries: 3, maxDelayMs: 50 }

t.test('retryAfterMs reads retry-after-ms, seconds and HTTP dates', async (t) => {
  const now = Date.parse('2025-06-01T12:00:00Z')
  t.equal(retryAfterMs(new Headers({ 'retry-after-ms': '250.4', 'retry-after': '9' }), now), 251, 'retry-after-ms wins')
  t.equal(retryAfterMs(new Headers({ 'retry-after': '3' }), now), 3000)
  t.equal(retryAfterMs(new Headers({ 'retry-after': '0.5' }), now), 500)
  t.equal(retryAfterMs(new Headers({ 'retry-after': 'Sun, 01 Jun 2025 12:00:07 GMT' }), now), 7000)
  t.equal(retryAfterMs(new Headers({ 'retry-after': 'Sun, 01 Jun 2025 11:00:00 GMT' }), now), 0, 'a date in the past means now')
  t.equal(retryAfterMs(new Headers({ 'retry-after': 'soon' }), now), null)
  t.equal(retryAfterMs(new Headers({ 'retry-after': '' }), now), null)
  t.equal(retryAfterMs(new Headers({ 'retry-after-ms': 'x' }), now), null)
  t.equal(retryAfterMs(new Headers(), now), null)
})

t.test('idempotent calls repeat network errors and 502/503/504; others do not', async (t) => {
  const { url, count } = await scripted(t, [
    (res) => { res.socket?.destroy() },
    (res) => { res.writeHead(503).end() },
    (res) => { res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}') }
  ])
  const answer = await callJson({ backend: 'test', method: 'GET', url, timeoutMs: 5000, retry, retryTransient: true })
  t.same(answer.body, { ok: true })
  t.equal(count(), 3)

  const once = await scripted(t, [(res) => { res.socket?.destroy() }])
  const err = await callJson({ backend: 'test', method: 'POST', url: once.url, body: {}, timeoutMs: 5000, retry }).catch((e: unknown) => e)
  t.ok(err instanceof BackendFailedError)
  t.equal(once.count(), 1, 'a POST is not repeated after a network error')

  const broken = await scripted(t, [(res) => { res.writeHead(502).end('bad gateway') }])
  const last = await callJson({ backend: 'test', method: 'GET', url: broken.url, timeoutMs: 5000, retry: { maxRetries: 2, maxDelayMs: 10 }, retryTransient: true })
  t.equal(last.status, 502, 'after the budget the last answer is handed back')
  t.equal(last.text, 'bad gateway')
  t.equal(last.body, null, 'a body that is not JSON parses to null')
  t.equal(broken.count(), 3)

  const down = await scripted(t, [(res) => { res.socket?.destroy() }])
  const gaveUp = await callJson({ backend: 'test', method: 'GET', url: down.url, timeoutMs: 5000, retry: { maxRetries: 1, maxDelayMs: 10 }, retryTransient: true }).catch((e: unknown) => e)
  t.ok(gaveUp instanceof BackendFailedError)
  t.equal(down.count(), 2)
})

t.test('a stream that stalls after its headers ends with a timeout error', async (t) => {
  const { url } = await scripted(t, [(res) => {
    res.writeHead(200, { 'content-type': 'image/png', 'content-length': '1000' })
    res.write(Buffer.alloc(10))
  }])
  // on a busy machine the timeout may already strike before the headers: either way it is a timeout
  const err = await (async () => {
    const stream = await fetchStream({ backend: 'test', url: `${url}/file.png?sig=secret`, timeoutMs: 200 })
    for await (const chunk of stream) void chunk
  })().catch((e: unknown) => e)
  t.ok(err instanceof BackendTimeoutError)
  t.match(err, { message: /GET http:\/\/127\.0\.0\.1:\d+\/file\.png took longer than allowed/ })
  t.notMatch((err as Error).message, /secret/, 'query strings stay out of messages')
})

t.test("a caller's deadline that passes mid-download is a timeout too", async (t) => {
  const { url } = await scripted(t, [(res) => {
    res.writeHead(200, { 'content-type': 'image/png' })
    res.write(Buffer.alloc(10))
  }])
  const err = await (async () => {
    const stream = await fetchStream({ backend: 'test', url, timeoutMs: 60_000, signal: AbortSignal.timeout(150) })
    for await (const chunk of stream) void chunk
  })().catch((e: unknown) => e)
  t.ok(err instanceof BackendTimeoutError)
})

t.test('an aborted download ends with the abort reason', async (t) => {
  const { url } = await scripted(t, [(res) => {
    res.writeHead(200, { 'content-type': 'image/png' })
    res.write(Buffer.alloc(10))
  }])
  const controller = new AbortController()
  const stream = await fetchStream({ backend: 'test', url, timeoutMs: 10_000, signal: controller.signal })
  const reading = (async () => {
    for await (const chunk of stream) {
      void chunk
      controller.abort(new Error('stop'))
    }
  })().catch((e: unknown) => e)
  t.match(await reading, { message: 'stop' })
})

t.test('a consumer that stops reading releases the download', async (t) => {
  let released = false
  const { url } = await scripted(t, [(res) => {
    res.on('close', () => { released = true })
    res.writeHead(200, { 'content-type': 'image/png' })
    res.write(Buffer.alloc(10))
  }])
  const stream = await fetchStream({ backend: 'test', url, timeoutMs: 10_000 })
  for await (const chunk of stream) {
    t.equal((chunk as Buffer).length, 10)
    break
  }
  for (let i = 0; i < 400 && !released; i++) await new Promise((resolve) => setTimeout(resolve, 5))
  t.ok(released, 'the upstream connection was closed')
})

t.test('sleep ends early on abort and not at all for nothing', async (t) => {
  await sleep(0)
  const controller = new AbortController()
  controller.abort(new Error('already'))
  await t.rejects(sleep(10, controller.signal), { message: 'already' })
  const later = new AbortController()
  const waiting = sleep(60_000, later.signal)
  later.abort(new Error('later'))
  await t.rejects(waiting, { message: 'later' })
})

t.test('small helpers', async (t) => {
  t.equal(describeUrl('https://user:pw@host.example/a/b.png?sig=1#x'), 'https://host.example/a/b.png')
  t.equal(describeUrl('not a url'), 'not a url')
  t.equal(errorText(null), '')
  t.equal(errorText('boom'), 'boom')
  t.equal(errorText({ code: 1 }), '{"code":1}')
  t.ok(decodeUpstreamData('test', 'QUJD').bytes.equals(Buffer.from('ABC')))
  t.throws(() => decodeUpstreamData('test', '***'), { code: 'BACKEND_FAILED', statusCode: 502, message: /backend test failed: it answered undecodable image data/ })
})
