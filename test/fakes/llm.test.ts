import t, { type Test } from 'tap'
import { startFakeLlm, llmReplies, type FakeLlm, type FakeLlmOptions } from './llm.js'

// The fake has to behave like Ollama, or tests against it prove nothing.

async function fake (t: Test, options: FakeLlmOptions = {}): Promise<FakeLlm> {
  const server = await startFakeLlm(options)
  t.teardown(server.close)
  return server
}

async function post (url: string, body: unknown): Promise<Response> {
  return await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
}

const chat = { model: 'llama3.2', messages: [{ role: 'user', content: 'Eine Blume auf der Wiese' }] }

t.test('native /api/chat streams NDJSON by default', async (t) => {
  const server = await fake(t, { responder: () => llmReplies.text('A flower on the meadow') })
  const response = await post(`${server.url}/api/chat`, chat)
  t.equal(response.status, 200)
  t.equal(response.headers.get('content-type'), 'application/x-ndjson')
  const lines = (await response.text()).trim().split('\n').map((line) => JSON.parse(line))
  t.ok(lines.length > 2)
  t.equal(lines.map((l) => l.message.content).join(''), 'A flower on the meadow')
  t.same(lines.slice(0, -1).map((l) => l.done), lines.slice(0, -1).map(() => false))
  t.match(lines.at(-1), { done: true, done_reason: 'stop', model: 'llama3.2' })
})

t.test('native /api/chat with stream:false answers one object', async (t) => {
  const server = await fake(t, { responder: () => llmReplies.text('A flower', { finishReason: 'length' }) })
  const body = await (await post(`${server.url}/api/chat`, { ...chat, stream: false })).json() as Record<string, any>
  t.match(body, { message: { role: 'assistant', content: 'A flower' }, done: true, done_reason: 'length' })
})

t.test('native errors: a line after a 200, a 500 without stream, a string error body', async (t) => {
  const server = await fake(t, { responder: () => ({ kind: 'stream_error', content: 'A flower on the meadow', error: 'an error was encountered while running the model' }) })
  const streamed = await post(`${server.url}/api/chat`, chat)
  t.equal(streamed.status, 200)
  const lines = (await streamed.text()).trim().split('\n').map((line) => JSON.parse(line))
  t.same(lines.at(-1), { error: 'an error was encountered while running the model' })
  t.ok(lines.length > 1, 'some content came first')

  const whole = await post(`${server.url}/api/chat`, { ...chat, stream: false })
  t.equal(whole.status, 500)
  t.same(await whole.json(), { error: 'an error was encountered while running the model' })

  server.setResponder(() => llmReplies.serverError('boom', 503))
  const failed = await post(`${server.url}/api/chat`, chat)
  t.equal(failed.status, 503)
  t.same(await failed.json(), { error: 'boom' })
})

t.test('unknown models are 404 on both APIs', async (t) => {
  const server = await fake(t, { models: ['llama3.2'] })
  const native = await post(`${server.url}/api/chat`, { ...chat, model: 'x' })
  t.equal(native.status, 404)
  t.same(await native.json(), { error: 'model "x" not found, try pulling it first' })
  const openAi = await post(`${server.url}/v1/chat/completions`, { ...chat, model: 'x' })
  t.equal(openAi.status, 404)
  t.match(await openAi.json(), { error: { message: 'model "x" not found, try pulling it first', type: 'api_error' } })
  t.match(await (await fetch(`${server.url}/api/tags`)).json(), { models: [{ name: 'llama3.2' }] })
  t.match(await (await fetch(`${server.url}/v1/models`)).json(), { object: 'list', data: [{ id: 'llama3.2' }] })
})

t.test('OpenAI-compatible: JSON by default, SSE with stream:true, echo by default', async (t) => {
  const server = await fake(t)
  const body = await (await post(`${server.url}/v1/chat/completions`, { ...chat, stream: false })).json() as Record<string, any>
  t.match(body, { object: 'chat.completion', choices: [{ message: { role: 'assistant', content: 'Eine Blume auf der Wiese' }, finish_reason: 'stop' }], usage: {} })

  const streamed = await post(`${server.url}/v1/chat/completions`, { ...chat, stream: true })
  t.equal(streamed.headers.get('content-type'), 'text/event-stream')
  const events = (await streamed.text()).trim().split('\n\n').map((e) => e.replace(/^data: /, ''))
  t.equal(events.at(-1), '[DONE]')
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e))
  t.equal(chunks.map((c) => c.choices[0].delta.content).join(''), 'Eine Blume auf der Wiese')
  t.equal(chunks.at(-1).choices[0].finish_reason, 'stop')

  server.setResponder(() => ({ kind: 'stream_error', content: '', error: 'runner died' }))
  const failed = await post(`${server.url}/v1/chat/completions`, chat)
  t.equal(failed.status, 500)
  t.match(await failed.json(), { error: { message: 'runner died' } })
})

t.test('bad requests and unknown paths', async (t) => {
  const server = await fake(t)
  const notJson = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', body: 'nope' })
  t.equal(notJson.status, 400)
  t.match(await notJson.json(), { error: { type: 'invalid_request_error' } })
  const nativeNotJson = await fetch(`${server.url}/api/chat`, { method: 'POST', body: 'nope' })
  t.equal(nativeNotJson.status, 400)
  const missing = await fetch(`${server.url}/api/generate`, { method: 'POST', body: '{}' })
  t.equal(missing.status, 404)
  t.equal(await missing.text(), '404 page not found')
  t.equal(server.requests.length, 3)
})

t.test('close ends hanging and slow requests', async (t) => {
  const server = await startFakeLlm({ responder: (request) => request.body.messages[0].content === 'slow' ? llmReplies.slow(60_000) : llmReplies.never() })
  const hanging = post(`${server.url}/v1/chat/completions`, chat).then(() => 'answered', () => 'closed')
  const slow = post(`${server.url}/v1/chat/completions`, { ...chat, messages: [{ role: 'user', content: 'slow' }] }).then(() => 'answered', () => 'closed')
  while (server.requests.length < 2) await new Promise((resolve) => setImmediate(resolve))
  await server.close()
  t.same(await Promise.all([hanging, slow]), ['closed', 'closed'])
})
