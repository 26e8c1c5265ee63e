import t, { type Test } from 'tap'
import { LlmClient, stripThinking } from '../../../services/pipeline/llm-client.js'
import { startFakeLlm, llmReplies, type FakeLlm } from '../../fakes/llm.js'

async function fake (t: Test, options: Parameters<typeof startFakeLlm>[0] = {}): Promise<FakeLlm> {
  const server = await startFakeLlm(options)
  t.teardown(server.close)
  return server
}

const user = [{ role: 'user' as const, content: 'Hallo' }]

t.test('a normal answer', async (t) => {
  const server = await fake(t, { responder: () => llmReplies.text('  Hello!  ', { model: 'llama3.2:3b-instruct' }) })
  const client = new LlmClient({ baseUrl: `${server.url}/v1/`, model: 'llama3.2', timeoutMs: 5000 })
  const answer = await client.chat([{ role: 'system', content: 'Translate.' }, ...user], { temperature: 0 })
  t.same(answer, { content: 'Hello!', model: 'llama3.2:3b-instruct', finish_reason: 'stop', thinking: null })
  t.equal(server.requests.length, 1)
  const request = server.requests[0]!
  t.equal(request.path, '/v1/chat/completions')
  t.same(request.body, { model: 'llama3.2', messages: [{ role: 'system', content: 'Translate.' }, ...user], stream: false, temperature: 0 })
  t.equal(request.headers.authorization, undefined)
  t.match(request.headers['content-type'], /application\/json/)
})

t.test('the API key goes in a bearer header; default temperature', async (t) => {
  const server = await fake(t)
  const client = new LlmClient({ baseUrl: `${server.url}/v1`, model: 'm', apiKey: 'sk-test', timeoutMs: 5000 })
  t.equal((await client.chat(user)).content, 'Hallo')
  t.equal(server.requests[0]!.headers.authorization, 'Bearer sk-test')
  t.equal(server.requests[0]!.body.temperature, 0.7)
  t.equal(client.model, 'm')
})

t.test('an empty API key sends no header', async (t) => {
  const server = await fake(t)
  await new LlmClient({ baseUrl: `${server.url}/v1`, model: 'm', apiKey: '', timeoutMs: 5000 }).chat(user)
  t.equal(server.requests[0]!.headers.authorization, undefined)
})

t.test('reasoning is stripped', async (t) => {
  const server = await fake(t, { responder: () => llmReplies.withThinking('The user wants English. Blume is flower.', 'A flower') })
  const answer = await new LlmClient({ baseUrl: `${server.url}/v1`, model: 'qwen3', timeoutMs: 5000 }).chat(user)
  t.equal(answer.content, 'A flower')
  t.equal(answer.thinking, 'The user wants English. Blume is flower.')
})

t.test('an answer that is only reasoning is an error', async (t) => {
  const server = await fake(t, { responder: () => llmReplies.text('<think>Let me think about this very carefully and', { finishReason: 'length' }) })
  await t.rejects(new LlmClient({ baseUrl: `${server.url}/v1`, model: 'qwen3', timeoutMs: 5000 }).chat(user), {
    code: 'BACKEND_FAILED', statusCode: 502, message: /held only the model's reasoning \(finish_reason length\)/
  })
})

t.test('an empty answer is an error', async (t) => {
  const server = await fake(t, { responder: () => llmReplies.text('   ') })
  await t.rejects(new LlmClient({ baseUrl: `${server.url}/v1`, model: 'm', timeoutMs: 5000 }).chat(user), { code: 'BACKEND_FAILED', message: /the answer was empty/ })
})

t.test('stripThinking', async (t) => {
  t.same(stripThinking('<think>a</think>B'), { content: 'B', thinking: 'a' })
  t.same(stripThinking('<THINK>a</THINK> B <think>c</think> D'), { content: 'B  D', thinking: 'a\n\nc' })
  t.same(stripThinking('reasoning without an opening tag</think>\nAnswer'), { content: 'Answer', thinking: 'reasoning without an opening tag' })
  t.same(stripThinking('<think>never closed'), { content: '', thinking: 'never closed' })
  t.same(stripThinking('Answer first <think>then musing'), { content: 'Answer first', thinking: 'then musing' })
  t.same(stripThinking('<think></think>Plain'), { content: 'Plain', thinking: null })
  t.same(stripThinking('Plain'), { content: 'Plain', thinking: null })
})

t.test('a slow server times out with a coded error', async (t) => {
  const server = await fake(t, { responder: () => llmReplies.slow(3000) })
  await t.rejects(new LlmClient({ baseUrl: `${server.url}/v1`, model: 'm', timeoutMs: 100 }).chat(user), {
    code: 'BACKEND_TIMEOUT', statusCode: 504, message: /backend llm timed out: POST http:\/\/127\.0\.0\.1:\d+\/v1\/chat\/completions gave no answer within 100 ms/
  })
})

t.test('a server that never answers times out too', async (t) => {
  const server = await fake(t, { responder: () => llmReplies.never() })
  await t.rejects(new LlmClient({ baseUrl: `${server.url}/v1`, model: 'm', timeoutMs: 100 }).chat(user), { code: 'BACKEND_TIMEOUT' })
})

t.test('the caller\'s abort rejects with its reason', async (t) => {
  const controller = new AbortController()
  const server = await fake(t, {
    responder: () => {
      controller.abort(new Error('client disconnected'))
      return llmReplies.never()
    }
  })
  await t.rejects(new LlmClient({ baseUrl: `${server.url}/v1`, model: 'm', timeoutMs: 5000 }).chat(user, { signal: controller.signal }), { message: 'client disconnected' })
})

t.test('server errors become readable coded errors', async (t) => {
  const server = await fake(t, { responder: () => llmReplies.serverError() })
  await t.rejects(new LlmClient({ baseUrl: `${server.url}/v1`, model: 'm', timeoutMs: 5000 }).chat(user), {
    code: 'BACKEND_FAILED', statusCode: 502, message: /answered 500: llama runner process has terminated: signal: killed \(api_error\)/
  })
})

t.test('an unknown model is Ollama\'s 404', async (t) => {
  const server = await fake(t, { models: ['llama3.2'] })
  await t.rejects(new LlmClient({ baseUrl: `${server.url}/v1`, model: 'mistral', timeoutMs: 5000 }).chat(user), {
    code: 'BACKEND_FAILED', message: /answered 404: model "mistral" not found, try pulling it first/
  })
})

t.test('odd answers', async (t) => {
  const cases: Array<[Parameters<typeof llmReplies.text>[0] | { kind: 'raw', status: number, body: string, contentType?: string }, RegExp]> = [
    [{ kind: 'raw', status: 200, body: '<html>proxy login</html>', contentType: 'text/html' }, /answered 200 with something that is not JSON: <html>/],
    [{ kind: 'raw', status: 200, body: '{"choices": []}' }, /no message content \(finish_reason none\)/],
    [{ kind: 'raw', status: 200, body: '{"choices": [{"message": {"role": "assistant", "content": null}, "finish_reason": "content_filter"}]}' }, /no message content \(finish_reason content_filter\)/],
    [{ kind: 'raw', status: 200, body: '{"error": {"message": "upstream overloaded"}}' }, /: upstream overloaded$/],
    [{ kind: 'raw', status: 500, body: '{"error": "model runner crashed"}' }, /answered 500: model runner crashed$/],
    [{ kind: 'raw', status: 502, body: 'Bad Gateway', contentType: 'text/plain' }, /answered 502: Bad Gateway$/],
    [{ kind: 'raw', status: 503, body: '' }, /answered 503: no message$/]
  ]
  const server = await fake(t)
  const client = new LlmClient({ baseUrl: `${server.url}/v1`, model: 'm', timeoutMs: 5000 })
  for (const [reply, message] of cases) {
    server.setResponder(() => typeof reply === 'string' ? llmReplies.text(reply) : reply)
    await t.rejects(client.chat(user), { code: 'BACKEND_FAILED', message }, message.source)
  }
})

t.test('a truncated answer is returned and says so', async (t) => {
  const server = await fake(t, { responder: () => llmReplies.text('A flower on the', { finishReason: 'length' }) })
  const answer = await new LlmClient({ baseUrl: `${server.url}/v1`, model: 'm', timeoutMs: 5000 }).chat(user)
  t.equal(answer.finish_reason, 'length')
  t.equal(answer.content, 'A flower on the')
})

t.test('nobody listening is a failure, not a hang', async (t) => {
  const server = await startFakeLlm()
  await server.close()
  await t.rejects(new LlmClient({ baseUrl: `${server.url}/v1`, model: 'm', timeoutMs: 5000 }).chat(user), { code: 'BACKEND_FAILED', message: /ECONNREFUSED/ })
})

t.test('a base URL that is not a URL fails at once', async (t) => {
  t.throws(() => new LlmClient({ baseUrl: 'localhost:11434', model: 'm', timeoutMs: 10 }), { name: 'TypeError', message: /not an http\(s\) URL: localhost:11434/ })
  t.throws(() => new LlmClient({ baseUrl: '::::', model: 'm', timeoutMs: 10 }), { name: 'TypeError', message: /not an http\(s\) URL: ::::/ })
})
