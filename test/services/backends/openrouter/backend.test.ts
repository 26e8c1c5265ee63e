import t, { type Test } from 'tap'
import { Readable } from 'node:stream'
import { imageSize } from 'image-size'
import { PNG } from 'pngjs'
import { OpenrouterImageBackend, type OpenrouterImageBackendOptions } from '../../../../services/backends/openrouter/backend.js'
import type { GenerationRequest } from '../../../../services/backends/types.js'
import {
  BackendFailedError, BackendTimeoutError, BackendUnavailableError, GenerationBlockedError
} from '../../../../services/errors.js'
import { FAKE_JPEG, makePng, startFakeOpenrouter, type FakeOpenrouter } from '../../../fakes/openrouter.js'
import { collectGenerated as collect, generationFailure as failure } from '../../../generated-media.js'

function request (overrides: Partial<GenerationRequest> = {}): GenerationRequest {
  return { run_id: '0193f1e2-7c4a-7b9e-8d2f-4c1a2b3c4d5e', prompt: 'a castle made of cheese', seed: 99, width: 1024, height: 1024, params: {}, ...overrides }
}

async function setup (t: Test, options: OpenrouterImageBackendOptions = {}): Promise<{ fake: FakeOpenrouter, backend: OpenrouterImageBackend }> {
  const fake = await startFakeOpenrouter()
  t.teardown(() => fake.close())
  const backend = new OpenrouterImageBackend({ apiKey: fake.apiKey, baseUrl: fake.baseUrl, timeoutMs: 60_000, maxRetryDelayMs: 5000, ...options })
  return { fake, backend }
}

t.test('without a key it says why and refuses to generate', async (t) => {
  const backend = new OpenrouterImageBackend()
  t.equal(backend.name, 'openrouter')
  t.equal(backend.unavailableReason(), 'OPENROUTER_API_KEY is not set')
  t.equal(new OpenrouterImageBackend({ apiKey: '' }).unavailableReason(), 'OPENROUTER_API_KEY is not set')
  const err = await failure(backend, request())
  t.ok(err instanceof BackendUnavailableError)
  t.match(err, { code: 'BACKEND_UNAVAILABLE', statusCode: 503 })
})

t.test('sends a chat completion asking for images and yields the PNG', async (t) => {
  const { fake, backend } = await setup(t)
  t.equal(backend.unavailableReason(), null)
  const items = await collect(backend, request())
  t.equal(items.length, 1)
  const png = PNG.sync.read(items[0]?.bytes as Buffer)
  t.same([png.width, png.height], [64, 48])
  t.equal(items[0]?.item.media_type, 'image')
  t.same(items[0]?.item.source, { kind: 'openrouter', model: 'google/gemini-2.5-flash-image', declared_mime_type: 'image/png', generation_id: 'gen-1760000000-abcdef' })
  const sent = fake.requests[0]
  t.equal(sent?.path, '/api/v1/chat/completions')
  t.equal(sent?.headers.authorization, `Bearer ${fake.apiKey}`)
  t.same(sent?.body, {
    model: 'google/gemini-2.5-flash-image',
    messages: [{ role: 'user', content: 'a castle made of cheese' }],
    modalities: ['image', 'text'],
    seed: 99
  })
})

t.test('params choose the model and aspect ratio; app headers are sent', async (t) => {
  const { fake } = await setup(t)
  const backend = new OpenrouterImageBackend({ apiKey: fake.apiKey, baseUrl: `${fake.baseUrl}/`, appUrl: 'https://workshop.example', appTitle: 'Runstore' })
  await collect(backend, request({ params: { model: 'openai/gpt-5-image-mini', aspect_ratio: '16:9' } }))
  const sent = fake.requests[0]
  t.match(sent?.body, { model: 'openai/gpt-5-image-mini', image_config: { aspect_ratio: '16:9' } })
  t.equal(sent?.headers['http-referer'], 'https://workshop.example')
  t.equal(sent?.headers['x-title'], 'Runstore')
})

t.test('wrapped base64 and a lying MIME: the bytes are decoded whole and the claim only recorded', async (t) => {
  const { fake, backend } = await setup(t)
  const png = makePng(70, 50)
  fake.behave({ kind: 'success', images: [{ bytes: FAKE_JPEG, declaredMime: 'image/png', wrapAt: 76 }, { bytes: png, declaredMime: 'image/jpeg', wrapAt: 64 }] })
  const items = await collect(backend, request())
  t.equal(items.length, 2)
  t.ok(items[0]?.bytes.equals(FAKE_JPEG), 'the JPEG bytes, exactly')
  t.equal(imageSize(items[0]?.bytes as Buffer).type, 'jpg')
  t.equal(items[0]?.item.source.declared_mime_type, 'image/png')
  t.ok(items[1]?.bytes.equals(png))
  t.equal(items[1]?.item.source.declared_mime_type, 'image/jpeg')
})

t.test('an image given as a URL is fetched as a stream', async (t) => {
  const { fake, backend } = await setup(t)
  fake.behave({ kind: 'image_url' })
  const items = await collect(backend, request())
  t.ok(items[0]?.item.body instanceof Readable)
  const png = PNG.sync.read(items[0]?.bytes as Buffer)
  t.same([png.width, png.height], [40, 30])
  t.match(items[0]?.item.source, { kind: 'openrouter', url: `${fake.url}/files/picture.png` })
})

t.test('a 200 without images is a failure that says what the model said', async (t) => {
  const { fake, backend } = await setup(t)
  fake.behave({ kind: 'no_image', content: null })
  const silent = await failure(backend, request())
  t.ok(silent instanceof BackendFailedError)
  t.match(silent, { code: 'BACKEND_FAILED', statusCode: 502, message: /the model returned no image$/ })
  fake.behave({ kind: 'no_image', content: 'I can only describe castles, here is a poem instead.' })
  t.match(await failure(backend, request()), { message: /the model returned no image; it said: I can only describe castles/ })
})

t.test('a model that stops for safety reasons is a blocked generation', async (t) => {
  const { fake, backend } = await setup(t)
  fake.behave({ kind: 'no_image', content: null, finishReason: 'stop', nativeFinishReason: 'IMAGE_SAFETY' })
  const err = await failure(backend, request())
  t.ok(err instanceof GenerationBlockedError)
  t.match(err, { code: 'GENERATION_BLOCKED', statusCode: 403, message: /declined \(stop, IMAGE_SAFETY\)/ })
  fake.behave({ kind: 'no_image', content: 'No.', finishReason: 'content_filter', nativeFinishReason: 'SAFETY' })
  t.match(await failure(backend, request()), { code: 'GENERATION_BLOCKED', message: /it said: No\./ })
})

t.test('OpenRouter moderation (403 with reasons) is a blocked generation', async (t) => {
  const { fake, backend } = await setup(t)
  fake.behave({ kind: 'moderation_blocked' })
  const err = await failure(backend, request())
  t.ok(err instanceof GenerationBlockedError)
  t.match(err, { code: 'GENERATION_BLOCKED', message: /Input flagged by moderation \(violence\/graphic\)/ })
})

t.test('moderation without a list of reasons is still a blocked generation', async (t) => {
  const { fake, backend } = await setup(t)
  fake.behave({ kind: 'moderation_blocked', reasons: null })
  t.match(await failure(backend, request()), { code: 'GENERATION_BLOCKED', message: /refused the prompt: Input flagged by moderation$/ })
})

t.test('a sparse answer: entries without a URL are skipped, the image is kept', async (t) => {
  const { fake, backend } = await setup(t)
  fake.behave({ kind: 'sparse' })
  const items = await collect(backend, request({ params: { model: 'some/model' } }))
  t.equal(items.length, 1)
  t.equal(PNG.sync.read(items[0]?.bytes as Buffer).width, 16)
  t.same(items[0]?.item.source, { kind: 'openrouter', model: 'some/model' }, 'no declared type, no generation id')
})

t.test('an HTML error page from a proxy is reported as it came', async (t) => {
  const { fake, backend } = await setup(t)
  fake.behave({ kind: 'proxy_error' })
  t.match(await failure(backend, request()), { code: 'BACKEND_FAILED', message: /HTTP 502: <html><head><title>502 Bad Gateway/ })
})

t.test('a wrong key, missing credits and provider errors fail with the upstream message', async (t) => {
  const { fake } = await setup(t)
  const wrong = new OpenrouterImageBackend({ apiKey: 'sk-or-wrong', baseUrl: fake.baseUrl })
  const unauthorized = await failure(wrong, request())
  t.ok(unauthorized instanceof BackendFailedError)
  t.match(unauthorized, { message: /HTTP 401: No auth credentials found/ })
  const backend = new OpenrouterImageBackend({ apiKey: fake.apiKey, baseUrl: fake.baseUrl })
  fake.behave({ kind: 'insufficient_credits' })
  t.match(await failure(backend, request()), { code: 'BACKEND_FAILED', message: /HTTP 402: Insufficient credits/ })
  fake.behave({ kind: 'error_in_200' })
  t.match(await failure(backend, request()), { code: 'BACKEND_FAILED', message: /HTTP 502: Provider returned error/ })
})

t.test('undecodable image data is a backend failure', async (t) => {
  const { fake, backend } = await setup(t)
  fake.behave({ kind: 'bad_data_uri' })
  t.match(await failure(backend, request()), { code: 'BACKEND_FAILED', message: /undecodable image data \(invalid data: not base64/ })
})

t.test('a 429 honours Retry-After, then succeeds; beyond the budget it fails', async (t) => {
  const { fake, backend } = await setup(t, { maxRetries: 1 })
  fake.behave({ kind: 'rate_limited', retryAfter: '1' }, { kind: 'success' })
  t.equal((await collect(backend, request())).length, 1)
  t.equal(fake.requests.length, 2)
  fake.behave({ kind: 'rate_limited', retryAfter: '0' })
  t.match(await failure(backend, request()), { code: 'BACKEND_FAILED', message: /HTTP 429: Rate limit exceeded/ })
  t.equal(fake.requests.length, 4)
})

t.test('BACKEND_TIMEOUT_MS bounds the whole generation, waits for 429s included', async (t) => {
  const { fake, backend } = await setup(t, { timeoutMs: 1500, maxRetries: 10 })
  fake.behave({ kind: 'rate_limited', retryAfter: '1' })
  t.match(await failure(backend, request()), { code: 'BACKEND_TIMEOUT', statusCode: 504, message: /1500 ms/ })
  t.ok(fake.requests.length < 11, `it stopped asking (${fake.requests.length} requests), not after the whole retry budget`)
})

t.test('a slow answer times out', async (t) => {
  const { fake, backend } = await setup(t, { timeoutMs: 200 })
  fake.behave({ kind: 'slow', delayMs: 5000 })
  const err = await failure(backend, request())
  t.ok(err instanceof BackendTimeoutError)
  t.match(err, { code: 'BACKEND_TIMEOUT', statusCode: 504 })
})

t.test('validateParams: model and aspect_ratio, nothing else', async (t) => {
  const backend = new OpenrouterImageBackend()
  for (const params of [{}, { model: 'google/gemini-2.5-flash-image' }, { model: 'openai/gpt-5-image-mini', aspect_ratio: '16:9' }]) {
    t.doesNotThrow(() => backend.validateParams(params), JSON.stringify(params))
  }
  t.throws(() => backend.validateParams({ aspect_ratio: 'wide' }), { message: 'params.aspect_ratio must be W:H, e.g. "16:9" (got "wide")' })
  t.throws(() => backend.validateParams({ model: ['a', 'b'] }), /params\.model must be a non-empty string \(got \["a","b"\]\)/)
  t.throws(() => backend.validateParams({ size: '1024x1024' }), /params\.size is not a parameter of the openrouter backend \(it takes model, aspect_ratio\)/)
})
