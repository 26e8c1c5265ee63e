import t, { type Test } from 'tap'
import { Readable } from 'node:stream'
import { PNG } from 'pngjs'
import { ReplicateBackend, type ReplicateBackendOptions } from '../../../../services/backends/replicate/backend.js'
import type { GenerationRequest, MediaItem } from '../../../../services/backends/types.js'
import {
  BackendFailedError, BackendTimeoutError, BackendUnavailableError, GenerationBlockedError
} from '../../../../services/errors.js'
import { startFakeReplicate, type FakeReplicate } from '../../../fakes/replicate.js'
import { bytesOf, collectGenerated as collect, generationFailure as failure } from '../../../generated-media.js'

const FLUX = 'black-forest-labs/flux-schnell'

function request (overrides: Partial<GenerationRequest> = {}): GenerationRequest {
  return { run_id: '0193f1e2-7c4a-7b9e-8d2f-4c1a2b3c4d5e', prompt: 'a fox in the snow', seed: 1234, width: 1024, height: 1024, params: { model: FLUX }, ...overrides }
}

async function setup (t: Test, options: ReplicateBackendOptions = {}): Promise<{ fake: FakeReplicate, backend: ReplicateBackend }> {
  const fake = await startFakeReplicate()
  t.teardown(() => fake.close())
  const backend = new ReplicateBackend({ apiToken: fake.apiToken, baseUrl: fake.baseUrl, pollIntervalMs: 10, timeoutMs: 60_000, maxRetryDelayMs: 5000, ...options })
  return { fake, backend }
}

async function until (condition: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 5))
}

function polls (fake: FakeReplicate): number {
  return fake.requests.filter((r) => r.method === 'GET' && r.path.startsWith('/v1/predictions/')).length
}

function downloads (fake: FakeReplicate): FakeReplicate['requests'] {
  return fake.requests.filter((r) => r.path.startsWith('/delivery/'))
}

t.test('without a token it says why and refuses to generate', async (t) => {
  const backend = new ReplicateBackend()
  t.equal(backend.name, 'replicate')
  t.equal(backend.unavailableReason(), 'REPLICATE_API_TOKEN is not set')
  t.equal(new ReplicateBackend({ apiToken: '' }).unavailableReason(), 'REPLICATE_API_TOKEN is not set')
  const err = await failure(backend, request())
  t.ok(err instanceof BackendUnavailableError)
  t.match(err, { code: 'BACKEND_UNAVAILABLE', statusCode: 503 })
})

t.test('creates, polls starting → processing → succeeded, and streams the file with the token', async (t) => {
  const { fake, backend } = await setup(t, { waitSeconds: 5 })
  t.equal(backend.unavailableReason(), null)
  const items = await collect(backend, request())
  t.equal(items.length, 1)
  const { item, bytes } = items[0] as { item: MediaItem, bytes: Buffer }
  t.ok(item.body instanceof Readable, 'streamed, not buffered')
  const png = PNG.sync.read(bytes)
  t.same([png.width, png.height], [48, 32])
  t.same(item.source, { kind: 'replicate', model: FLUX, prediction_id: 'pred0001xyz', url: `${fake.url}/delivery/xezq/pred0001xyz/out-0.png` })

  const create = fake.creates()
  t.equal(create.length, 1)
  t.equal(create[0]?.path, `/v1/models/${FLUX}/predictions`)
  t.equal(create[0]?.headers.authorization, `Bearer ${fake.apiToken}`)
  t.equal(create[0]?.headers.prefer, 'wait=5')
  t.same(create[0]?.body, { input: { prompt: 'a fox in the snow', seed: 1234 } })
  t.equal(polls(fake), 2, 'polled until succeeded')
  for (const poll of fake.requests.filter((r) => r.method === 'GET' && r.path.startsWith('/v1/'))) {
    t.equal(poll.headers.authorization, `Bearer ${fake.apiToken}`)
  }
  t.equal(downloads(fake).length, 1)
  t.equal(downloads(fake)[0]?.headers.authorization, `Bearer ${fake.apiToken}`, 'the file fetch carried the token')
})

t.test('the delivery route of the fake really refuses a fetch without the token', async (t) => {
  const { fake, backend } = await setup(t)
  await collect(backend, request())
  const url = `${fake.url}${downloads(fake)[0]?.path ?? ''}`
  t.equal((await fetch(url)).status, 403)
  t.equal((await fetch(url, { headers: { authorization: `Bearer ${fake.apiToken}` } })).status, 200)
})

t.test('a Prefer: wait that finishes in time needs no polls', async (t) => {
  const { fake, backend } = await setup(t)
  fake.behave({ finishWithinWait: true })
  const items = await collect(backend, request())
  t.equal(items.length, 1)
  t.equal(fake.creates()[0]?.headers.prefer, 'wait=60', 'the default wait')
  t.equal(polls(fake), 0)
})

t.test('a Prefer: wait that ran out (unfinished, output null) and unknown statuses keep it polling', async (t) => {
  const { fake, backend } = await setup(t)
  fake.behave({ statuses: ['starting', 'queued_for_gpu', 'queued_for_gpu', 'processing', 'succeeded'] })
  const items = await collect(backend, request())
  t.equal(items.length, 1)
  t.equal(polls(fake), 4)
})

t.test('output shapes: an array and an object of URLs give every file; a data URI is decoded', async (t) => {
  const { fake, backend } = await setup(t)
  fake.behave({ output: 'array' })
  const array = await collect(backend, request())
  t.equal(array.length, 2)
  t.same(array.map(({ bytes }) => PNG.sync.read(bytes).width), [48, 64])
  t.match(array[1]?.item.source, { url: /out-1\.png$/ })

  fake.behave({ output: 'object' })
  const object = await collect(backend, request())
  t.equal(object.length, 2, 'the image and the URL nested in a list; text values skipped')
  t.same(object.map(({ bytes }) => PNG.sync.read(bytes).width), [48, 64])

  fake.behave({ output: 'data_uri' })
  const data = await collect(backend, request())
  t.equal(data.length, 1)
  t.ok(Buffer.isBuffer(data[0]?.item.body))
  t.same([PNG.sync.read(data[0]?.bytes as Buffer).width, PNG.sync.read(data[0]?.bytes as Buffer).height], [20, 10])
  t.same(data[0]?.item.source, { kind: 'replicate', model: FLUX, prediction_id: 'pred0003xyz', declared_mime_type: 'image/png' })
  t.ok(downloads(fake).every((d) => d.headers.authorization === `Bearer ${fake.apiToken}`))
})

t.test('output that is text or nothing is a failure', async (t) => {
  const { fake, backend } = await setup(t)
  fake.behave({ output: 'text' })
  const text = await failure(backend, request())
  t.ok(text instanceof BackendFailedError)
  t.match(text, { code: 'BACKEND_FAILED', statusCode: 502, message: /returned text, not media: A small red fox in the snow\./ })
  fake.behave({ output: 'null' })
  t.match(await failure(backend, request()), { code: 'BACKEND_FAILED', message: /succeeded without any output/ })
  t.equal(downloads(fake).length, 0)
})

t.test('a failed prediction fails with its error; a safety refusal is blocked', async (t) => {
  const { fake, backend } = await setup(t)
  fake.behave({ statuses: ['starting', 'processing', 'failed'], error: 'CUDA error: out of memory' })
  const failed = await failure(backend, request())
  t.ok(failed instanceof BackendFailedError)
  t.match(failed, { message: /prediction pred0001xyz failed: CUDA error: out of memory/ })
  fake.behave({ statuses: ['starting', 'failed'], error: 'NSFW content detected. Try running it again, or try a different prompt.' })
  const blocked = await failure(backend, request())
  t.ok(blocked instanceof GenerationBlockedError)
  t.match(blocked, { code: 'GENERATION_BLOCKED', statusCode: 403, message: /NSFW content detected/ })
  fake.behave({ statuses: ['failed'], error: 'The input or output was flagged as sensitive. Please try again with different inputs. (E005)' })
  t.match(await failure(backend, request()), { code: 'GENERATION_BLOCKED' })
})

t.test('canceled and aborted predictions fail', async (t) => {
  const { fake, backend } = await setup(t)
  fake.behave({ statuses: ['starting', 'canceled'] })
  t.match(await failure(backend, request()), { code: 'BACKEND_FAILED', message: /prediction pred0001xyz was canceled/ })
  fake.behave({ statuses: ['processing', 'aborted'] })
  t.match(await failure(backend, request()), { code: 'BACKEND_FAILED', message: /was aborted/ })
})

t.test('a 422 fails with the problem detail', async (t) => {
  const { fake, backend } = await setup(t)
  fake.behave({ createError: 422 })
  const err = await failure(backend, request())
  t.ok(err instanceof BackendFailedError)
  t.match(err, { code: 'BACKEND_FAILED', statusCode: 502, message: /create answered 422: Input validation failed: - input\.num_outputs: Must be less than or equal to 4/ })
  t.equal(fake.creates().length, 1)
})

t.test('a wrong token fails with the problem detail', async (t) => {
  const { fake } = await setup(t)
  const backend = new ReplicateBackend({ apiToken: 'r8_wrong', baseUrl: fake.baseUrl })
  t.match(await failure(backend, request()), { code: 'BACKEND_FAILED', message: /create answered 401: Unauthenticated: You did not pass a valid authentication token/ })
})

t.test('a 429 on create was not accepted, so it is retried after Retry-After', async (t) => {
  const { fake, backend } = await setup(t)
  fake.behave({ rateLimitCreates: 1, retryAfter: '1' })
  t.equal((await collect(backend, request())).length, 1)
  t.equal(fake.creates().length, 2)
  t.equal(fake.predictions.size, 1)
})

t.test('429 and 503 on polls are waited out', async (t) => {
  const { fake, backend } = await setup(t, { maxRetryDelayMs: 100 })
  fake.behave({ rateLimitPolls: 1, retryAfter: '0', failPolls: 2 })
  t.equal((await collect(backend, request())).length, 1)
  t.equal(polls(fake), 5, 'one 429, two 503s, then the two real polls')
})

t.test('a create that times out is never repeated', async (t) => {
  const { fake, backend } = await setup(t, { requestTimeoutMs: 200, waitSeconds: 1 })
  fake.behave({ createDelayMs: 5000 })
  const err = await failure(backend, request())
  t.ok(err instanceof BackendTimeoutError)
  t.match(err, { code: 'BACKEND_TIMEOUT', statusCode: 504, message: /POST .*\/predictions took longer than allowed/ })
  t.equal(fake.creates().length, 1)
  t.equal(fake.predictions.size, 1, 'the prediction exists upstream: a blind retry would have made a second one')
})

t.test('a create whose connection drops is never repeated', async (t) => {
  const { fake, backend } = await setup(t)
  fake.behave({ dropCreate: true })
  const err = await failure(backend, request())
  t.ok(err instanceof BackendFailedError)
  t.equal(fake.creates().length, 1)
})

t.test('answers that are not predictions fail cleanly', async (t) => {
  const { fake, backend } = await setup(t)
  fake.behave({ rawCreateAnswer: { status: 502, contentType: 'text/html', body: '<html><body>502 Bad Gateway</body></html>' } })
  t.match(await failure(backend, request()), { code: 'BACKEND_FAILED', message: /create answered 502: <html><body>502 Bad Gateway/ })
  fake.behave({ rawCreateAnswer: { status: 201, contentType: 'application/json', body: '{"ok":true}' } })
  t.match(await failure(backend, request()), { code: 'BACKEND_FAILED', message: /create answered something that is not a prediction/ })
  fake.behave({ rawCreateAnswer: { status: 404, contentType: 'text/plain', body: '' } })
  t.match(await failure(backend, request()), { message: /create answered 404: no message/ })
  t.equal(fake.creates().length, 3)
})

t.test('a failed prediction without an error says so', async (t) => {
  const { fake, backend } = await setup(t)
  fake.behave({ statuses: ['starting', 'failed'], error: '' })
  t.match(await failure(backend, request()), { code: 'BACKEND_FAILED', message: /prediction pred0001xyz failed: no error given/ })
})

t.test('the overall deadline also covers a create that hangs', async (t) => {
  const { fake, backend } = await setup(t, { timeoutMs: 200, requestTimeoutMs: 10_000 })
  fake.behave({ createDelayMs: 5000 })
  const err = await failure(backend, request())
  t.ok(err instanceof BackendTimeoutError)
  t.match(err, { message: /prediction \(not created\) took longer than 200 ms/ })
  t.equal(fake.creates().length, 1)
})

t.test('a 500 on create is not repeated either', async (t) => {
  const { fake, backend } = await setup(t)
  fake.behave({ createError: 500 })
  t.match(await failure(backend, request()), { code: 'BACKEND_FAILED', message: /create answered 500: Internal Server Error: Something went wrong/ })
  t.equal(fake.creates().length, 1)
})

t.test('a prediction that takes too long times out and is canceled upstream', async (t) => {
  const { fake, backend } = await setup(t, { timeoutMs: 1000 })
  fake.behave({ statuses: ['starting', 'processing'] })
  const err = await failure(backend, request())
  t.ok(err instanceof BackendTimeoutError)
  t.match(err, { code: 'BACKEND_TIMEOUT', message: /prediction pred0001xyz took longer than 1000 ms/ })
  await until(() => fake.predictions.get('pred0001xyz')?.canceled === true)
  t.equal(fake.predictions.get('pred0001xyz')?.canceled, true)
  const cancel = fake.requests.find((r) => r.path.endsWith('/cancel'))
  t.equal(cancel?.headers.authorization, `Bearer ${fake.apiToken}`)
})

t.test('an abort stops polling and cancels the prediction', async (t) => {
  const { fake, backend } = await setup(t)
  fake.behave({ statuses: ['starting', 'processing'] })
  const controller = new AbortController()
  const pending = failure(backend, request({ signal: controller.signal }))
  await until(() => polls(fake) >= 2)
  controller.abort(new Error('the teacher stopped the run'))
  t.match(await pending, { message: 'the teacher stopped the run' })
  await until(() => fake.predictions.get('pred0001xyz')?.canceled === true)
  t.equal(fake.predictions.get('pred0001xyz')?.canceled, true)
})

t.test('urls on another host are not trusted with the token', async (t) => {
  const { fake, backend } = await setup(t)
  fake.behave({ foreignUrls: true })
  t.equal((await collect(backend, request())).length, 1)
  t.equal(polls(fake), 2, 'polled on the API base URL instead')
})

t.test('a version, or owner/name:version, creates through /predictions', async (t) => {
  const { fake, backend } = await setup(t)
  const plain = await collect(backend, request({ params: { version: '5599ed30' } }))
  t.same(fake.creates()[0]?.body, { version: '5599ed30', input: { prompt: 'a fox in the snow', seed: 1234 } })
  t.equal(fake.creates()[0]?.path, '/v1/predictions')
  t.equal(plain[0]?.item.source.model, '5599ed30')
  const pinned = await collect(backend, request({ params: { model: `${FLUX}:abc123` } }))
  t.match(fake.creates()[1]?.body, { version: 'abc123' })
  t.equal(pinned[0]?.item.source.model, `${FLUX}:abc123`)
  const both = await collect(backend, request({ params: { model: FLUX, version: 'def456' } }))
  t.match(fake.creates()[2]?.body, { version: 'def456' })
  t.equal(both[0]?.item.source.model, `${FLUX}:def456`)
})

t.test('a model that is not owner/name is refused before any call', async (t) => {
  const { fake, backend } = await setup(t)
  t.match(await failure(backend, request({ params: {} })), { code: 'BACKEND_FAILED', message: /params\.model must be "owner\/name" \(got null\)/ })
  t.match(await failure(backend, request({ params: { model: 'flux' } })), { message: /\(got "flux"\)/ })
  t.equal(fake.requests.length, 0)
})

t.test('inputs: size as aspect ratio or width/height, extra inputs, negative prompt on request', async (t) => {
  const { fake, backend } = await setup(t, { waitSeconds: 500 })
  await collect(backend, request({ width: 1920, height: 1080, params: { model: FLUX, size_as: 'aspect_ratio', input: { num_outputs: 1, go_fast: true, prompt: 'overridden' } } }))
  t.same(fake.creates()[0]?.body, { input: { num_outputs: 1, go_fast: true, prompt: 'a fox in the snow', seed: 1234, aspect_ratio: '16:9' } })
  t.equal(fake.creates()[0]?.headers.prefer, 'wait=60', 'the wait is capped at 60 s')
  await collect(backend, request({ width: 768, height: 1024, negative_prompt: 'blurry', params: { model: FLUX, size_as: 'width_height', negative_prompt: true } }))
  t.same(fake.creates()[1]?.body, { input: { prompt: 'a fox in the snow', seed: 1234, width: 768, height: 1024, negative_prompt: 'blurry' } })
  await collect(backend, request({ width: 0, height: 0, negative_prompt: 'blurry', params: { model: FLUX, size_as: 'aspect_ratio' } }))
  t.same(fake.creates()[2]?.body, { input: { prompt: 'a fox in the snow', seed: 1234, aspect_ratio: '1:1' } })
})

t.test('a file that is gone fails the download', async (t) => {
  const { fake, backend } = await setup(t)
  fake.behave({ filesRemoved: true })
  const err = await failure(backend, request())
  t.ok(err instanceof BackendFailedError)
  t.match(err, { code: 'BACKEND_FAILED', message: /GET http:\/\/127\.0\.0\.1:\d+\/delivery\/xezq\/pred0001xyz\/out-0\.png answered 404/ })
})

t.test('files already yielded stay with the consumer when a later one fails', async (t) => {
  const { fake, backend } = await setup(t)
  fake.behave({ output: 'array', finishWithinWait: true })
  const generator = backend.generate(request())
  const first = await generator.next()
  t.equal(first.done, false)
  const bytes = await bytesOf((first.value as MediaItem).body)
  t.equal(PNG.sync.read(bytes).width, 48)
  await fake.close()
  const err = await generator.next().catch((e: unknown) => e)
  t.ok(err instanceof BackendFailedError, 'the second download fails on its own')
})

t.test('validateParams: a model or a version; input an object; size_as and negative_prompt as generate reads them', async (t) => {
  const backend = new ReplicateBackend()
  const good = [
    { model: FLUX },
    { model: FLUX, size_as: 'aspect_ratio', input: { num_outputs: 1, output_format: 'png', go_fast: true } },
    { model: FLUX, size_as: 'width_height', negative_prompt: true },
    { model: `${FLUX}:abc123` },
    { version: '5599ed30' },
    { model: FLUX, version: 'def456' }
  ]
  for (const params of good) t.doesNotThrow(() => backend.validateParams(params), JSON.stringify(params))
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{}, /params\.model \("owner\/name"\) or params\.version is required/],
    [{ input: {} }, /params\.model \("owner\/name"\) or params\.version is required/],
    [{ model: 'flux' }, /params\.model must be "owner\/name" or "owner\/name:version" \(got "flux"\)/],
    [{ model: FLUX, input: 'png' }, /params\.input must be an object/],
    [{ model: FLUX, size_as: 'pixels' }, /params\.size_as must be one of "aspect_ratio", "width_height"/],
    [{ model: FLUX, negative_prompt: 'blurry' }, /params\.negative_prompt must be true or false \(got "blurry"\)/],
    [{ model: FLUX, version: '' }, /params\.version must be a non-empty string/],
    [{ model: FLUX, inputs: {} }, /params\.inputs is not a parameter of the replicate backend/]
  ]
  for (const [params, message] of bad) t.throws(() => backend.validateParams(params), { message }, JSON.stringify(params))
})
