import t, { type Test } from 'tap'
import { Readable } from 'node:stream'
import { PNG } from 'pngjs'
import { OpenaiImageBackend, allowedSize, type OpenaiImageBackendOptions } from '../../../../services/backends/openai/backend.js'
import type { GenerationRequest, MediaItem } from '../../../../services/backends/types.js'
import {
  BackendFailedError, BackendTimeoutError, BackendUnavailableError, GenerationBlockedError
} from '../../../../services/errors.js'
import { startFakeOpenai, type FakeOpenai } from '../../../fakes/openai.js'
import { collectGenerated as collect, generationFailure as failure } from '../../../generated-media.js'

function request (overrides: Partial<GenerationRequest> = {}): GenerationRequest {
  return { run_id: '0193f1e2-7c4a-7b9e-8d2f-4c1a2b3c4d5e', prompt: 'a friendly robot painting flowers', seed: 7, width: 1024, height: 1024, params: {}, ...overrides }
}

async function setup (t: Test, options: OpenaiImageBackendOptions = {}): Promise<{ fake: FakeOpenai, backend: OpenaiImageBackend }> {
  const fake = await startFakeOpenai()
  t.teardown(() => fake.close())
  const backend = new OpenaiImageBackend({ apiKey: fake.apiKey, baseUrl: fake.baseUrl, timeoutMs: 60_000, maxRetryDelayMs: 5000, ...options })
  return { fake, backend }
}

t.test('without a key it says why and refuses to generate', async (t) => {
  const backend = new OpenaiImageBackend({ apiKey: '' })
  t.equal(backend.name, 'openai')
  t.equal(backend.unavailableReason(), 'OPENAI_API_KEY is not set')
  t.equal(new OpenaiImageBackend().unavailableReason(), 'OPENAI_API_KEY is not set')
  const err = await failure(backend, request())
  t.ok(err instanceof BackendUnavailableError)
  t.match(err, { code: 'BACKEND_UNAVAILABLE', statusCode: 503, message: /OPENAI_API_KEY is not set/ })
})

t.test('Images API: sends the real request and yields the PNG', async (t) => {
  const { fake, backend } = await setup(t)
  t.equal(backend.unavailableReason(), null)
  const items = await collect(backend, request())
  t.equal(items.length, 1)
  const { item, bytes } = items[0] as { item: MediaItem, bytes: Buffer }
  t.equal(item.media_type, 'image')
  t.same(item.source, { kind: 'openai', model: 'gpt-image-1' })
  const png = PNG.sync.read(bytes)
  t.same([png.width, png.height], [1024, 1024])

  t.equal(fake.requests.length, 1)
  const sent = fake.requests[0]
  t.equal(sent?.path, '/v1/images/generations')
  t.equal(sent?.headers.authorization, `Bearer ${fake.apiKey}`)
  t.equal(sent?.headers['content-type'], 'application/json')
  t.same(sent?.body, { model: 'gpt-image-1', prompt: 'a friendly robot painting flowers', n: 1, size: '1024x1024', quality: 'auto', output_format: 'png' })
})

t.test('Images API: the size follows the requested shape; params override model, size, quality and add options', async (t) => {
  const { fake, backend } = await setup(t)
  const wide = await collect(backend, request({ width: 1920, height: 1080 }))
  const widePng = PNG.sync.read(wide[0]?.bytes as Buffer)
  t.same([widePng.width, widePng.height], [1536, 1024])
  t.match(fake.requests[0]?.body, { size: '1536x1024' })

  const items = await collect(backend, request({
    width: 512,
    height: 1024,
    params: { model: 'gpt-image-1-mini', size: '1024x1536', quality: 'low', n: 2, moderation: 'auto', background: 'transparent', unknown: 'x' }
  }))
  t.equal(items.length, 2)
  t.notOk(items[0]?.bytes.equals(items[1]?.bytes as Buffer), 'two different images')
  t.same(items[0]?.item.source, { kind: 'openai', model: 'gpt-image-1-mini' })
  t.same(fake.requests[1]?.body, {
    model: 'gpt-image-1-mini', prompt: 'a friendly robot painting flowers', n: 2, size: '1024x1536', quality: 'low', output_format: 'png', background: 'transparent', moderation: 'auto'
  })
  const tall = PNG.sync.read(items[1]?.bytes as Buffer)
  t.same([tall.width, tall.height], [1024, 1536])
  await collect(backend, request({ params: { n: 50, size: '64x64' } }))
  t.match(fake.requests[2]?.body, { n: 10 }, 'n is capped')
})

t.test('allowedSize picks the closest allowed shape', async (t) => {
  t.equal(allowedSize(1024, 1024), '1024x1024')
  t.equal(allowedSize(1100, 1000), '1024x1024')
  t.equal(allowedSize(1280, 1024), '1536x1024')
  t.equal(allowedSize(800, 1000), '1024x1536')
  t.equal(allowedSize(0, 0), '1024x1024')
})

t.test('a revised prompt is kept in the source', async (t) => {
  const { fake, backend } = await setup(t)
  fake.behave({ kind: 'success', revisedPrompt: 'A cheerful robot with a brush' })
  const items = await collect(backend, request())
  t.same(items[0]?.item.source, { kind: 'openai', model: 'gpt-image-1', revised_prompt: 'A cheerful robot with a brush' })
})

t.test('a legacy data[].url answer is fetched as a stream', async (t) => {
  const { fake, backend } = await setup(t)
  fake.behave({ kind: 'legacy_url' })
  const items = await collect(backend, request({ params: { model: 'dall-e-3' } }))
  t.equal(items.length, 1)
  t.ok(items[0]?.item.body instanceof Readable)
  const png = PNG.sync.read(items[0]?.bytes as Buffer)
  t.same([png.width, png.height], [1024, 1024])
  t.match(items[0]?.item.source, { kind: 'openai', model: 'dall-e-3', revised_prompt: 'a legacy picture', url: /\/files\/img-1\.png\?/ })
  t.equal(fake.requests[1]?.method, 'GET')
})

t.test('Responses API: asks for the tool by name and yields the image_generation_call result', async (t) => {
  const { fake, backend } = await setup(t)
  const items = await collect(backend, request({ width: 1000, height: 1400, params: { api: 'responses', image_model: 'gpt-image-1', quality: 'high' } }))
  t.equal(items.length, 1)
  const png = PNG.sync.read(items[0]?.bytes as Buffer)
  t.same([png.width, png.height], [1024, 1536])
  t.same(items[0]?.item.source, {
    kind: 'openai', model: 'gpt-4.1', image_model: 'gpt-image-1', revised_prompt: 'A picture of a friendly robot painting flowers', call_id: 'ig_0001'
  })
  const sent = fake.requests[0]
  t.equal(sent?.path, '/v1/responses')
  t.same(sent?.body, {
    model: 'gpt-4.1',
    input: 'a friendly robot painting flowers',
    tools: [{ type: 'image_generation', size: '1024x1536', quality: 'high', output_format: 'png', model: 'gpt-image-1' }],
    tool_choice: { type: 'image_generation' }
  })
  await collect(backend, request({ params: { api: 'responses', model: 'gpt-5', moderation: 'low' } }))
  t.same(fake.requests[1]?.body, {
    model: 'gpt-5',
    input: 'a friendly robot painting flowers',
    tools: [{ type: 'image_generation', size: '1024x1024', quality: 'auto', output_format: 'png', moderation: 'low' }],
    tool_choice: { type: 'image_generation' }
  })
})

t.test('a 200 without an image is a failure, with what the model said', async (t) => {
  const { fake, backend } = await setup(t)
  fake.behave({ kind: 'no_image' })
  const images = await failure(backend, request())
  t.ok(images instanceof BackendFailedError)
  t.match(images, { code: 'BACKEND_FAILED', statusCode: 502, message: /no image/ })
  const responses = await failure(backend, request({ params: { api: 'responses' } }))
  t.ok(responses instanceof BackendFailedError)
  t.match(responses, { message: /no image; the model said: I can describe the picture/ })
  fake.behave({ kind: 'response_failed' })
  t.match(await failure(backend, request({ params: { api: 'responses' } })), { code: 'BACKEND_FAILED', message: /no image: The image could not be generated/ })
})

t.test('a moderation refusal is a blocked generation, not a crash', async (t) => {
  const { fake, backend } = await setup(t)
  fake.behave({ kind: 'moderation_blocked' })
  for (const api of ['images', 'responses']) {
    const err = await failure(backend, request({ params: { api } }))
    t.ok(err instanceof GenerationBlockedError, api)
    t.match(err, { code: 'GENERATION_BLOCKED', statusCode: 403, message: /rejected as a result of our safety system/ })
  }
  t.equal(fake.requests.length, 2, 'not retried')
})

t.test('a wrong key fails with the upstream message', async (t) => {
  const { fake } = await setup(t)
  const backend = new OpenaiImageBackend({ apiKey: 'sk-wrong-key', baseUrl: fake.baseUrl })
  const err = await failure(backend, request())
  t.ok(err instanceof BackendFailedError)
  t.match(err, { code: 'BACKEND_FAILED', statusCode: 502, message: /HTTP 401: Incorrect API key provided: sk-wro\*\*\*\*/ })
})

t.test('a 429 is waited out as Retry-After asks, then succeeds', async (t) => {
  const { fake, backend } = await setup(t)
  fake.behave({ kind: 'rate_limited', retryAfter: '1' }, { kind: 'rate_limited', retryAfterMs: '30' }, { kind: 'success' })
  const items = await collect(backend, request())
  t.equal(items.length, 1)
  t.equal(fake.requests.length, 3)
})

t.test('429s beyond the retry budget fail with the upstream message', async (t) => {
  const { fake, backend } = await setup(t, { maxRetries: 1 })
  fake.behave({ kind: 'rate_limited', retryAfterMs: '10' })
  const err = await failure(backend, request())
  t.ok(err instanceof BackendFailedError)
  t.match(err, { message: /HTTP 429: Rate limit reached for gpt-image-1/ })
  t.equal(fake.requests.length, 2)
})

t.test('BACKEND_TIMEOUT_MS bounds the whole generation, waits for 429s included: 504, not the last 429', async (t) => {
  const { fake, backend } = await setup(t, { timeoutMs: 300, maxRetries: 10 })
  fake.behave({ kind: 'rate_limited', retryAfterMs: '200' })
  t.match(await failure(backend, request()), { code: 'BACKEND_TIMEOUT', statusCode: 504, message: /300 ms/ })
  t.ok(fake.requests.length < 11, `it stopped asking (${fake.requests.length} requests), not after the whole retry budget`)
})

t.test('a Retry-After longer than the allowed wait fails at once', async (t) => {
  const { fake, backend } = await setup(t, { maxRetryDelayMs: 2000 })
  fake.behave({ kind: 'rate_limited', retryAfter: '120' })
  t.match(await failure(backend, request()), { code: 'BACKEND_FAILED', message: /HTTP 429/ })
  t.equal(fake.requests.length, 1)
})

t.test('a 429 without Retry-After backs off by itself', async (t) => {
  const { fake, backend } = await setup(t, { maxRetryDelayMs: 50 })
  fake.behave({ kind: 'rate_limited' }, { kind: 'success' })
  t.equal((await collect(backend, request())).length, 1)
  t.equal(fake.requests.length, 2)
})

t.test('an exhausted quota is not waited for', async (t) => {
  const { fake, backend } = await setup(t)
  fake.behave({ kind: 'insufficient_quota' })
  t.match(await failure(backend, request()), { code: 'BACKEND_FAILED', message: /HTTP 429: You exceeded your current quota/ })
  t.equal(fake.requests.length, 1)
})

t.test('an abort ends a Retry-After wait at once', async (t) => {
  const { fake, backend } = await setup(t, { maxRetryDelayMs: 60_000 })
  fake.behave({ kind: 'rate_limited', retryAfter: '30' }, { kind: 'success' })
  const controller = new AbortController()
  const pending = failure(backend, request({ signal: controller.signal }))
  while (fake.requests.length === 0) await new Promise((resolve) => setTimeout(resolve, 5))
  controller.abort(new Error('the teacher stopped the run'))
  t.match(await pending, { message: 'the teacher stopped the run' })
  t.equal(fake.requests.length, 1, 'no retry after the abort')
})

t.test('a slow answer times out', async (t) => {
  const { fake, backend } = await setup(t, { timeoutMs: 200 })
  fake.behave({ kind: 'slow', delayMs: 5000 })
  const err = await failure(backend, request())
  t.ok(err instanceof BackendTimeoutError)
  t.match(err, { code: 'BACKEND_TIMEOUT', statusCode: 504, message: /POST http:\/\/127\.0\.0\.1:\d+\/v1\/images\/generations took longer than allowed/ })
})

t.test('a slow answer within the timeout is fine', async (t) => {
  const { fake, backend } = await setup(t, { timeoutMs: 30_000 })
  fake.behave({ kind: 'slow', delayMs: 50 })
  t.equal((await collect(backend, request())).length, 1)
})

t.test('server errors and broken answers fail cleanly', async (t) => {
  const { fake, backend } = await setup(t)
  fake.behave({ kind: 'server_error' })
  t.match(await failure(backend, request()), { code: 'BACKEND_FAILED', message: /HTTP 500: The server had an error/ })
  t.equal(fake.requests.length, 1, 'a POST that may have run is not repeated')
  fake.behave({ kind: 'bad_base64' })
  t.match(await failure(backend, request()), { code: 'BACKEND_FAILED', message: /undecodable image data/ })
  t.match(await failure(backend, request({ params: { api: 'responses' } })), { code: 'BACKEND_FAILED', message: /undecodable image data/ })
  t.match(await failure(backend, request({ params: { api: 'chat' } })), { code: 'BACKEND_FAILED', message: /unknown api "chat"/ })
})

t.test('Responses API: failed and empty calls are skipped, the completed one is kept', async (t) => {
  const { fake, backend } = await setup(t)
  fake.behave({ kind: 'mixed_calls' })
  const items = await collect(backend, request({ params: { api: 'responses' } }))
  t.equal(items.length, 1)
  t.equal(PNG.sync.read(items[0]?.bytes as Buffer).width, 32)
  t.same(items[0]?.item.source, { kind: 'openai', model: 'gpt-4.1', call_id: 'ig_0002' })
})

t.test('an HTML error page from a proxy is reported as it came', async (t) => {
  const { fake, backend } = await setup(t)
  fake.behave({ kind: 'proxy_error' })
  t.match(await failure(backend, request()), { code: 'BACKEND_FAILED', message: /HTTP 502: <html><head><title>502 Bad Gateway/ })
})

t.test('an unreachable server is a backend failure', async (t) => {
  const { fake } = await setup(t)
  const baseUrl = fake.baseUrl
  await fake.close()
  const err = await failure(new OpenaiImageBackend({ apiKey: 'sk-x', baseUrl }), request())
  t.ok(err instanceof BackendFailedError)
  t.match(err, { message: /POST http:\/\/127\.0\.0\.1:\d+\/v1\/images\/generations: ECONNREFUSED/ })
})

t.test('validateParams: the shipped config passes; unknown names, wrong types and values fail, with or without a key', async (t) => {
  const backend = new OpenaiImageBackend()
  const good = [
    {},
    { api: 'images', model: 'gpt-image-1', quality: 'medium', moderation: 'auto' },
    { api: 'images', model: 'gpt-image-1-mini', size: '1024x1536', quality: 'low', n: 2, moderation: 'auto', background: 'transparent' },
    { api: 'responses', model: 'gpt-5', image_model: 'gpt-image-1', size: 'auto' },
    { n: 10 }
  ]
  for (const params of good) t.doesNotThrow(() => backend.validateParams(params), JSON.stringify(params))
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ api: 'chat' }, /params\.api must be one of "images", "responses" \(got "chat"\)/],
    [{ n: 0 }, /params\.n must be a whole number from 1 to 10/],
    [{ n: 11 }, /params\.n must be a whole number from 1 to 10/],
    [{ n: 1.5 }, /params\.n must be a whole number/],
    [{ size: 'large' }, /params\.size must be "auto" or WIDTHxHEIGHT/],
    [{ quality: 3 }, /params\.quality must be a non-empty string \(got 3\)/],
    [{ model: '' }, /params\.model must be a non-empty string/],
    [{ qualty: 'high' }, /params\.qualty is not a parameter of the openai backend \(it takes api, model, image_model, n, size, quality, background, moderation\)/]
  ]
  for (const [params, message] of bad) t.throws(() => backend.validateParams(params), { message }, JSON.stringify(params))
})
