import t, { type Test } from 'tap'
import { createHash } from 'node:crypto'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { BuiltinBackend } from '../../services/backends/builtin/backend.js'
import type { MediaItem } from '../../services/backends/types.js'
import { GenerationBlockedError } from '../../services/errors.js'
import { build, storedView, tempRunsDir } from '../helper.js'
import { storedMetadata } from '../stored-view.js'
import {
  EVENTS_OF_ONE_OUTPUT, FailingBackend, GatedBackend, backendOutput, parseSse, pipelineLike, smallPng, testConfigsDir, tinyImage, type SseEvent
} from '../pipeline-setup.js'

const EXECUTE = '/api/schema/pipeline/execute'
const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex')

const smallImage = { ...tinyImage, name: 'small_image', defaults: { width: 256, height: 256 } }

/** An app on its own RUNS_DIR with the test output configs (tiny_image, small_image, gated_image, broken_image, refusing_image). */
async function setup (t: Test, env: Record<string, string> = {}, pipelines: Array<Record<string, unknown>> = []) {
  const runsDir = await tempRunsDir(t)
  const configsDir = await testConfigsDir(t, {
    outputs: [tinyImage, smallImage, backendOutput('gated_image', 'gated'), backendOutput('broken_image', 'broken'), backendOutput('refusing_image', 'refusing')],
    pipelines
  })
  const app = await build(t, { RUNS_DIR: runsDir, CONFIGS_DIR: configsDir, ...env })
  const gated = new GatedBackend()
  const concurrency = app.config.BACKEND_CONCURRENCY
  app.backends.register(gated, { concurrency })
  app.backends.register(new FailingBackend('broken', undefined, 1), { concurrency })
  app.backends.register(new FailingBackend('refusing', () => new GenerationBlockedError('refusing', 'flagged by moderation')), { concurrency })
  return { app, stored: storedView(runsDir), gated }
}

async function bytesOf (iterable: AsyncIterable<MediaItem>): Promise<Buffer> {
  for await (const item of iterable) return item.body as Buffer
  throw new Error('no media')
}

t.test('a German prompt, end to end with the builtin providers: translated, transformed, checked, generated, stored, viewable', async (t) => {
  const runsDir = await tempRunsDir(t)
  const app = await build(t, { RUNS_DIR: runsDir })
  const stored = storedView(runsDir)
  const res = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'Eine Blume auf der Wiese' } })
  t.equal(res.statusCode, 200)
  const answer = res.json()
  const runId: string = answer.run_id
  t.equal(res.headers['x-run-id'], runId)
  t.match(answer, {
    status: 'success',
    schema: 'dada',
    execution_mode: 'eco',
    safety_level: 'kids',
    input_text: 'Eine Blume auf der Wiese',
    media_output: { config: 'builtin_image', status: 'success', run_id: runId, output: runId, media_stored: true, media_type: 'image', index: 0, url: `/api/media/image/${runId}/0`, filename: 'output_image.png' }
  })
  t.type(answer.execution_time_ms, 'number')
  t.same(answer.media_outputs, [answer.media_output])

  // The research trail, as stored.
  t.same(await stored.list(runId), ['input_text.txt', 'metadata.json', 'output_image.png', 'transformed_text.txt'])
  t.equal((await stored.read(runId, 'input_text.txt')).toString(), 'Eine Blume auf der Wiese')
  const metadata = await storedMetadata(stored, runId)
  t.equal(metadata.status, 'completed')
  t.equal(metadata.seed, answer.seed)
  t.same(metadata.stages.map((s: any) => [s.stage, s.status, s.provider]), [
    ['translation', 'completed', 'builtin'], ['safety', 'completed', 'builtin'], ['interception', 'completed', 'builtin'],
    ['pre_output_safety', 'completed', 'builtin'], ['generation', 'completed', 'builtin']
  ])
  t.ok(metadata.stages.every((s: any) => typeof s.duration_ms === 'number'), 'every stage timed')
  t.equal(metadata.stages[0].output, 'A flower on the meadow', 'translated')
  t.match(metadata.transformed_text, /^.*a flower on the meadow, cut apart and glued back together as a Dada photomontage/i, 'transformed in the style of the pipeline')
  t.equal((await stored.read(runId, 'transformed_text.txt')).toString(), metadata.transformed_text)
  t.equal(answer.transformed_text, metadata.transformed_text)
  t.equal(answer.final_output, metadata.transformed_text)
  t.same(answer.stages, metadata.stages)
  t.same((await app.inject({ url: `/api/runs/${runId}` })).json(), metadata, 'the API gives what is stored')

  // Viewable, and the picture of this very prompt and seed.
  const image = await app.inject({ url: answer.media_output.url })
  t.equal(image.statusCode, 200)
  t.equal(image.headers['content-type'], 'image/png')
  const storedImage = await stored.read(runId, 'output_image.png')
  t.same(image.rawPayload, storedImage)
  t.equal(metadata.outputs[0].sha256, sha256(storedImage))
  t.match(metadata.outputs[0], { width: 1024, height: 1024, config: 'builtin_image', backend: 'builtin' })
  const expected = await bytesOf(new BuiltinBackend().generate({ run_id: runId, prompt: metadata.transformed_text, seed: metadata.seed, width: 1024, height: 1024, params: { media_type: 'image' } }))
  t.ok(storedImage.equals(expected), 'made from the transformed prompt and the run\'s seed')
  t.match((await app.inject({ url: `/api/media/info/${runId}` })).json(), { status: 'completed', type: 'image', url: `/api/media/image/${runId}/0` })
})

t.test('the body: defaults, unknown fields ignored, bad values refused; unknown names 404 and unusable backends 503, nothing written', async (t) => {
  const cloudOnly = await pipelineLike('cloud_only', (p) => { p.default_outputs.fast = ['gpt_image', 'openrouter_image'] })
  const { app, stored } = await setup(t, {}, [cloudOnly])
  const extra = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'a cat', output_configs: ['tiny_image'], frontend_version: '2.1', prompt_id: 'x' } })
  t.equal(extra.statusCode, 200, 'fields it does not know are ignored')
  t.equal(extra.json().seed, (await storedMetadata(stored, extra.json().run_id)).seed)
  const given = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'a cat', output_configs: ['tiny_image'], seed: 7, user_id: 'DOE_J', safety_level: 'youth' } })
  t.match(given.json(), { seed: 7, safety_level: 'youth' })
  t.match(await storedMetadata(stored, given.json().run_id), { seed: 7, user_id: 'DOE_J', safety_level: 'youth' })
  const before = (await app.storage.listRunIds()).length

  const bad = [
    { input_text: 'a cat' },
    { schema: 'dada' },
    { schema: 'dada', input_text: '' },
    { schema: '../etc', input_text: 'a cat' },
    { schema: 'dada', input_text: 'a cat', execution_mode: 'turbo' },
    { schema: 'dada', input_text: 'a cat', safety_level: 'none' },
    { schema: 'dada', input_text: 'a cat', output_configs: [] },
    { schema: 'dada', input_text: 'a cat', output_configs: ['tiny_image', 'tiny_image'] },
    { schema: 'dada', input_text: 'a cat', seed: -1 },
    { schema: 'dada', input_text: 'a cat', aspect_ratio: '7:5' },
    // JSON has types: nothing is converted to the one the schema wants
    { schema: ['dada'], input_text: 'a cat' },
    { schema: 123, input_text: 'a cat' },
    { schema: 'dada', input_text: 42 },
    { schema: 'dada', input_text: 'a cat', seed: '7' },
    { schema: 'dada', input_text: 'a cat', output_configs: 'tiny_image' },
    { schema: 'dada', input_text: 'a cat', execution_mode: ['eco'] }
  ]
  for (const payload of bad) {
    const res = await app.inject({ method: 'POST', url: EXECUTE, payload })
    t.equal(res.statusCode, 400, JSON.stringify(payload))
    t.match(res.json(), { statusCode: 400, error: 'Bad Request', code: 'INVALID_REQUEST', message: String })
  }
  const notFound = [
    [{ schema: 'cubism', input_text: 'a cat' }, 'PIPELINE_NOT_FOUND'],
    [{ schema: 'dada', input_text: 'a cat', output_configs: ['midjourney'] }, 'OUTPUT_CONFIG_NOT_FOUND']
  ] as const
  for (const [payload, code] of notFound) {
    const res = await app.inject({ method: 'POST', url: EXECUTE, payload })
    t.equal(res.statusCode, 404, code)
    t.same(Object.keys(res.json()).sort(), ['code', 'error', 'message', 'statusCode'])
    t.match(res.json(), { statusCode: 404, error: 'Not Found', code })
  }
  const unusable = [
    [{ schema: 'dada', input_text: 'a cat', output_configs: ['sd35_large'] }, 'backend comfyui is not available: COMFYUI_URL is not set'],
    [{ schema: 'cloud_only', input_text: 'a cat', execution_mode: 'fast' }, 'nothing the cloud_only pipeline makes in fast mode can run now: ' +
      'gpt_image (not_configured: OPENAI_API_KEY is not set); openrouter_image (not_configured: OPENROUTER_API_KEY is not set)']
  ] as const
  for (const [payload, message] of unusable) {
    const res = await app.inject({ method: 'POST', url: EXECUTE, payload })
    t.equal(res.statusCode, 503)
    t.same(res.json(), { statusCode: 503, error: 'Service Unavailable', code: 'BACKEND_UNAVAILABLE', message })
    t.notOk(res.headers['retry-after'], 'waiting does not help an unconfigured backend')
  }
  t.equal((await app.storage.listRunIds()).length, before, 'nothing was written for any of them')
})

t.test('blocked at stage 1: 403 with stage, reason and codes; the run is kept as blocked; nothing generated; its queue place given back', async (t) => {
  const { app, stored } = await setup(t, { GENERATION_QUEUE_LIMIT: '0', BACKEND_CONCURRENCY: '1' })
  const res = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'Ein Kind mit einer Pistole', output_configs: ['tiny_image'] } })
  t.equal(res.statusCode, 403)
  const body = res.json()
  t.same(body, {
    status: 'blocked',
    run_id: body.run_id,
    stage: 'safety',
    reason: 'Weapons don\'t belong in our pictures. How about a magic wand or a musical instrument instead?',
    codes: ['violence.weapon']
  })
  t.equal(res.headers['x-run-id'], body.run_id)
  const metadata = await storedMetadata(stored, body.run_id)
  t.equal(metadata.status, 'blocked')
  t.equal(metadata.input_text, 'Ein Kind mit einer Pistole')
  t.same(metadata.stages.map((s: any) => [s.stage, s.status]), [['translation', 'completed'], ['safety', 'blocked']])
  t.match(metadata.stages[1], { provider: 'builtin', decision: { allowed: false, codes: ['violence.weapon'] }, details: { matches: [{ code: 'violence.weapon', found: 'pistole' }] } })
  t.same(metadata.outputs, [])
  t.equal(metadata.transformed_text, null)
  t.same(await stored.list(body.run_id), ['input_text.txt', 'metadata.json'])
  t.match((await app.inject({ url: `/api/media/image/${body.run_id}` })).json(), { statusCode: 404, code: 'MEDIA_NOT_FOUND' })
  t.match((await app.inject({ url: `/api/media/info/${body.run_id}` })).json(), { status: 'blocked', type: null })

  // One place in the builtin queue, none waiting: the blocked run must have given its back.
  const next = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'a cat', output_configs: ['tiny_image'] } })
  t.equal(next.statusCode, 200)
})

t.test('blocked at stage 3: interception added what the input did not have', async (t) => {
  const swords = await pipelineLike('knights', (definition) => {
    definition.title = 'Knights'
    definition.builtin = { template: '{prompt} with {vocabulary}', vocabulary: ['a bloody sword'], vocabulary_picks: 1 }
    definition.default_outputs = { eco: ['tiny_image'], fast: ['tiny_image'], ultra: ['tiny_image'] }
  })
  const { app, stored } = await setup(t, {}, [swords])
  const res = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'knights', input_text: 'a brave cat' } })
  t.equal(res.statusCode, 403)
  const body = res.json()
  t.match(body, { status: 'blocked', stage: 'pre_output_safety', codes: ['violence.weapon', 'gore.blood'] })
  const metadata = await storedMetadata(stored, body.run_id)
  t.equal(metadata.status, 'blocked')
  t.same(metadata.stages.map((s: any) => [s.stage, s.status]), [['translation', 'completed'], ['safety', 'completed'], ['interception', 'completed'], ['pre_output_safety', 'blocked']])
  t.equal(metadata.transformed_text, 'a brave cat with a bloody sword')
  t.equal((await stored.read(body.run_id, 'transformed_text.txt')).toString(), 'a brave cat with a bloody sword', 'what was blocked stays for the researchers')
  t.same(metadata.outputs, [])
})

t.test('stage 3 checks per media type: a screaming cat may be drawn, not played', async (t) => {
  const { app, stored } = await setup(t)
  const picture = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'a cat screaming at the moon', output_configs: ['tiny_image'] } })
  t.equal(picture.statusCode, 200)
  const sound = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'a cat screaming at the moon', output_configs: ['tiny_image', 'builtin_audio'] } })
  t.equal(sound.statusCode, 403)
  t.match(sound.json(), { status: 'blocked', stage: 'pre_output_safety', codes: ['sound.frightening'], reason: /sound/ })
  const metadata = await storedMetadata(stored, sound.json().run_id)
  t.same(metadata.stages.filter((s: any) => s.stage === 'pre_output_safety').map((s: any) => [s.details.media_type, s.status]), [['image', 'completed'], ['audio', 'blocked']])
  t.same(metadata.outputs, [], 'nothing generated, not even the picture')
})

t.test('a backend\'s moderation refusing the prompt is a 403 blocked at generation', async (t) => {
  const { app, stored } = await setup(t)
  const res = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'a cat', output_configs: ['refusing_image'] } })
  t.equal(res.statusCode, 403)
  t.match(res.json(), { status: 'blocked', stage: 'generation', codes: ['GENERATION_BLOCKED'], reason: 'backend refusing refused the prompt: flagged by moderation' })
  t.equal((await storedMetadata(stored, res.json().run_id)).status, 'blocked')
})

t.test('a backend that fails after storing one of two outputs: 502, the run failed with the error, the stored output still served', async (t) => {
  const { app, stored } = await setup(t)
  const res = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'a cat', output_configs: ['broken_image'] } })
  t.equal(res.statusCode, 502)
  t.same(res.json(), { statusCode: 502, error: 'Bad Gateway', code: 'BACKEND_FAILED', message: 'backend broken failed: out of memory' })
  const runId = res.headers['x-run-id'] as string
  const metadata = await storedMetadata(stored, runId)
  t.equal(metadata.status, 'failed')
  t.match(metadata.errors, [{ stage: 'generation', code: 'BACKEND_FAILED', message: 'backend broken failed: out of memory' }])
  t.equal(metadata.outputs.length, 1)
  const image = await app.inject({ url: `/api/media/image/${runId}/0` })
  t.equal(image.statusCode, 200)
  t.same(image.rawPayload, await stored.read(runId, 'output_image.png'))
})

t.test('several output configs and an aspect ratio: media_outputs[], one check per media type', async (t) => {
  const { app, stored } = await setup(t)
  const res = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'fairytale', input_text: 'a castle in the clouds', output_configs: ['small_image', 'builtin_audio'], aspect_ratio: '16:9' } })
  t.equal(res.statusCode, 200)
  const answer = res.json()
  const runId = answer.run_id
  t.equal(answer.media_outputs.length, 2)
  const byType = Object.fromEntries(answer.media_outputs.map((o: any) => [o.media_type, o]))
  t.match(byType.image, { config: 'small_image', url: `/api/media/image/${runId}/0`, filename: 'output_image.png', media_stored: true })
  t.match(byType.audio, { config: 'builtin_audio', url: `/api/media/audio/${runId}/0`, filename: 'output_audio.wav', media_stored: true })
  t.same(answer.media_outputs.map((o: any) => o.index), [0, 1], 'in the order of outputs[]')
  t.same(answer.media_output, answer.media_outputs[0])
  const metadata = await storedMetadata(stored, runId)
  t.match(metadata.outputs.find((o: any) => o.type === 'image'), { width: 320, height: 192 }, '16:9 at the config\'s area, in multiples of 64')
  t.match(metadata.outputs.find((o: any) => o.type === 'audio'), { format: 'wav', duration_seconds: 6 })
  t.same(metadata.stages.filter((s: any) => s.stage === 'pre_output_safety').map((s: any) => s.details.media_type).sort(), ['audio', 'image'])
  t.same(metadata.stages.filter((s: any) => s.stage === 'generation').map((s: any) => s.details.config).sort(), ['builtin_audio', 'small_image'])
  t.equal((await app.inject({ url: byType.image.url })).headers['content-type'], 'image/png')
  t.equal((await app.inject({ url: byType.audio.url })).headers['content-type'], 'audio/wav')
})

t.test('GET /api/schema/pipelines lists pipelines and output configs with availability', async (t) => {
  const { app } = await setup(t)
  const res = await app.inject({ url: '/api/schema/pipelines' })
  t.equal(res.statusCode, 200)
  const list = res.json()
  t.same(list.pipelines.map((p: any) => p.name), ['bauhaus', 'dada', 'fairytale', 'futurism'])
  const notConfigured = (configs: string[], backend: string, detail: string) => ({ output_configs: configs, config: configs[0], backend, reason: 'not_configured', detail })
  const comfyui = notConfigured(['sd35_large'], 'comfyui', 'COMFYUI_URL is not set')
  const openai = notConfigured(['gpt_image'], 'openai', 'OPENAI_API_KEY is not set')
  const openrouter = notConfigured(['openrouter_image'], 'openrouter', 'OPENROUTER_API_KEY is not set')
  t.same(list.pipelines.find((p: any) => p.name === 'dada'), {
    name: 'dada',
    title: 'Dada',
    description: 'Collage, chance and joyful nonsense, as in Zurich and Berlin around 1916–1922 (Hannah Höch, Kurt Schwitters, Hans Arp).',
    default_outputs: {
      eco: ['sd35_large', 'builtin_image'],
      fast: ['gpt_image', 'openrouter_image', 'builtin_image'],
      ultra: [['gpt_image', 'openrouter_image'], 'gpt_image', 'openrouter_image', 'sd35_large', 'builtin_image']
    },
    output_choices: {
      eco: { source: 'default_outputs', chosen: ['builtin_image'], skipped: [comfyui] },
      fast: { source: 'default_outputs', chosen: ['builtin_image'], skipped: [openai, openrouter] },
      ultra: { source: 'default_outputs', chosen: ['builtin_image'], skipped: [{ ...openai, output_configs: ['gpt_image', 'openrouter_image'] }, openai, openrouter, comfyui] }
    }
  }, 'no key and no URL: every mode makes its picture with the builtin generator, and says what it passed over')
  t.same(list.pipelines.find((p: any) => p.name === 'fairytale').output_choices.ultra.chosen, ['builtin_image', 'builtin_audio'], 'a group runs together')
  const configs = Object.fromEntries(list.output_configs.map((c: any) => [c.name, c]))
  t.same(configs.builtin_image, { name: 'builtin_image', description: configs.builtin_image.description, media_type: 'image', backend: 'builtin', available: true, unavailable_reason: null })
  t.match(configs.builtin_audio, { media_type: 'audio', available: true })
  t.match(configs.sd35_large, { media_type: 'image', backend: 'comfyui', available: false, unavailable_reason: 'COMFYUI_URL is not set' })
  t.match(configs.gated_image, { available: true })
  t.same(list.execution_modes, { eco: { provider: 'builtin', model: null, llm_steps: [] }, fast: { provider: 'builtin', model: null, llm_steps: [] }, ultra: { provider: 'builtin', model: null, llm_steps: [] } })
})

t.test('the OpenAPI document describes both routes under the pipeline tag', async (t) => {
  const { app } = await setup(t)
  const doc = (await app.inject({ url: '/openapi.json' })).json()
  t.ok(doc.tags.some((tag: any) => tag.name === 'pipeline'))
  const execute = doc.paths['/api/schema/pipeline/execute'].post
  t.same(execute.tags, ['pipeline'])
  t.ok(execute.summary)
  t.match(execute.description, /text\/event-stream/)
  t.ok(execute.requestBody.content['application/json'].schema.properties.aspect_ratio)
  t.ok(execute.responses['200'].content['application/json'])
  t.ok(execute.responses['200'].content['text/event-stream'])
  for (const code of ['403', '404', '502', '503', '504']) t.ok(execute.responses[code], `${code} described`)
  t.same(doc.paths['/api/schema/pipelines'].get.tags, ['pipeline'])
})

interface EventStream {
  events: SseEvent[]
  response: Promise<IncomingMessage>
  ended: Promise<void>
  waitFor: (event: string) => Promise<SseEvent>
  disconnect: () => void
}

/** POST /execute with Accept: text/event-stream over a real socket, events parsed as they arrive. */
function streamExecute (baseUrl: string, payload: Record<string, unknown>): EventStream {
  const events: SseEvent[] = []
  const waiters: Array<{ event: string, resolve: (e: SseEvent) => void }> = []
  const request = httpRequest(`${baseUrl}${EXECUTE}`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream' } })
  const response = new Promise<IncomingMessage>((resolve, reject) => {
    request.on('response', resolve)
    request.on('error', reject)
  })
  const ended = response.then(async (res) => await new Promise<void>((resolve) => {
    let buffer = ''
    res.setEncoding('utf8')
    res.on('data', (chunk: string) => {
      buffer += chunk
      for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
        for (const event of parseSse(buffer.slice(0, end + 2))) {
          events.push(event)
          for (const waiter of waiters.filter((w) => w.event === event.event)) {
            waiters.splice(waiters.indexOf(waiter), 1)
            waiter.resolve(event)
          }
        }
        buffer = buffer.slice(end + 2)
      }
    })
    res.on('close', resolve)
  }))
  request.end(JSON.stringify(payload))
  return {
    events,
    response,
    ended,
    waitFor: async (event) => events.find((e) => e.event === event) ?? await new Promise((resolve) => waiters.push({ event, resolve })),
    disconnect: () => { request.destroy() }
  }
}

t.test('Accept: text/event-stream: the same run as events, in order, over a real socket', async (t) => {
  const { app, stored } = await setup(t)
  const baseUrl = await app.listen({ host: '127.0.0.1', port: 0 })
  const stream = streamExecute(baseUrl, { schema: 'dada', input_text: 'Eine Blume auf der Wiese', output_configs: ['tiny_image'] })
  const res = await stream.response
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-type'], 'text/event-stream; charset=utf-8')
  t.equal(res.headers['cache-control'], 'no-cache, no-transform')
  t.ok(res.headers['x-request-id'])
  await stream.ended
  const { events } = stream
  t.same(events.map((e) => e.event === 'stage_started' || e.event === 'stage_completed' ? `${e.event}:${String(e.data.stage)}` : e.event), EVENTS_OF_ONE_OUTPUT)
  const runId = events[0]!.data.run_id
  t.match(events[0]!.data, { schema: 'dada', execution_mode: 'eco', output_configs: ['tiny_image'], seed: Number })
  t.ok(events.every((e) => e.data.run_id === runId), 'every event names the run')
  t.match(events.find((e) => e.event === 'stage_completed')!.data, { stage: 'translation', output: 'A flower on the meadow', provider: 'builtin', duration_ms: Number })
  t.match(events.find((e) => e.event === 'media_stored')!.data, { media_type: 'image', url: `/api/media/image/${runId}/0`, index: 0 })
  const metadata = await storedMetadata(stored, runId)
  t.equal(metadata.status, 'completed')
  t.same(events.at(-1)!.data.stages, metadata.stages, 'completed carries the JSON answer')
  t.equal((await app.inject({ url: `/api/media/image/${runId}` })).statusCode, 200)
})

t.test('event streams that end blocked or with an error; refusals before the run are plain JSON', async (t) => {
  const { app, stored } = await setup(t)
  const blocked = await app.inject({ method: 'POST', url: EXECUTE, headers: { accept: 'text/event-stream' }, payload: { schema: 'dada', input_text: 'Ein Hund mit einem Schwert', output_configs: ['tiny_image'] } })
  t.equal(blocked.statusCode, 200, 'the stream itself is fine')
  const blockedEvents = parseSse(blocked.body)
  t.same(blockedEvents.map((e) => e.event), ['run_created', 'stage_started', 'stage_completed', 'stage_started', 'stage_completed', 'blocked'])
  t.match(blockedEvents.at(-1)!.data, { status: 'blocked', stage: 'safety', codes: ['violence.weapon'] })

  const failed = await app.inject({ method: 'POST', url: EXECUTE, headers: { accept: 'text/event-stream' }, payload: { schema: 'dada', input_text: 'a cat', output_configs: ['broken_image'] } })
  const failedEvents = parseSse(failed.body)
  t.same(failedEvents.slice(-3).map((e) => e.event), ['media_stored', 'stage_completed', 'error'])
  const runId = failedEvents[0]!.data.run_id
  t.same(failedEvents.at(-1)!.data, { run_id: runId, stage: 'generation', statusCode: 502, error: 'Bad Gateway', code: 'BACKEND_FAILED', message: 'backend broken failed: out of memory' })
  t.equal((await storedMetadata(stored, runId)).status, 'failed')

  const unknown = await app.inject({ method: 'POST', url: EXECUTE, headers: { accept: 'text/event-stream' }, payload: { schema: 'cubism', input_text: 'a cat' } })
  t.equal(unknown.statusCode, 404)
  t.match(unknown.headers['content-type'], /application\/json/)
  t.match(unknown.json(), { code: 'PIPELINE_NOT_FOUND' })
})

t.test('a client that disconnects does not stop the run from being stored', async (t) => {
  const { app, stored, gated } = await setup(t)
  const baseUrl = await app.listen({ host: '127.0.0.1', port: 0 })
  const stream = streamExecute(baseUrl, { schema: 'dada', input_text: 'a cat', output_configs: ['gated_image'] })
  const created = await stream.waitFor('run_created')
  const runId: string = created.data.run_id
  await gated.started()
  stream.disconnect()
  await stream.ended
  t.notOk(stream.events.some((e) => e.event === 'completed'), 'the client left before the end')
  gated.open()
  await app.pipeline.settled()
  const metadata = await storedMetadata(stored, runId)
  t.equal(metadata.status, 'completed')
  t.match(metadata.outputs, [{ filename: 'output_image.png', backend: 'gated' }])
  const image = await app.inject({ url: `/api/media/image/${runId}` })
  t.same(image.rawPayload, smallPng(metadata.transformed_text, metadata.seed))
})

t.test('a frontend polling GET /api/media/info sees the run running, then its image', async (t) => {
  const { app, gated } = await setup(t)
  const executing = app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'Eine Katze', output_configs: ['gated_image'] } })
  await gated.started()
  const [runId] = await app.storage.listRunIds()
  const during = await app.inject({ url: `/api/media/info/${runId!}` })
  t.equal(during.statusCode, 200)
  t.match(during.json(), { run_id: runId, status: 'running', type: null, url: null, outputs: [] })
  const notYet = await app.inject({ url: `/api/media/image/${runId!}` })
  t.equal(notYet.statusCode, 404)
  t.match(notYet.json(), { code: 'MEDIA_NOT_READY' }, 'not ready, rather than not found, while it runs')
  gated.open()
  t.equal((await executing).statusCode, 200)
  t.match((await app.inject({ url: `/api/media/info/${runId!}` })).json(), { status: 'completed', type: 'image', url: `/api/media/image/${runId!}/0` })
  t.equal((await app.inject({ url: `/api/media/image/${runId!}` })).statusCode, 200)
  t.match((await app.inject({ url: `/api/media/audio/${runId!}` })).json(), { code: 'MEDIA_NOT_FOUND' }, 'and an audio it will never have is not found')
})

t.test('a full queue answers 503 with Retry-After, and no run is created', async (t) => {
  const { app, stored, gated } = await setup(t, { GENERATION_QUEUE_LIMIT: '0', BACKEND_CONCURRENCY: '1' })
  const first = app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'a cat', output_configs: ['gated_image'] } })
  await gated.started()
  const refused = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'a dog', output_configs: ['gated_image'] } })
  t.equal(refused.statusCode, 503)
  t.same(refused.json(), { statusCode: 503, error: 'Service Unavailable', code: 'QUEUE_FULL', message: 'too many generations are waiting for gated; try again shortly' })
  t.match(refused.headers['retry-after'], /^\d+$/)
  t.ok(Number(refused.headers['retry-after']) >= 1)
  t.notOk(refused.headers['x-run-id'])
  const sse = await app.inject({ method: 'POST', url: EXECUTE, headers: { accept: 'text/event-stream' }, payload: { schema: 'dada', input_text: 'a dog', output_configs: ['gated_image'] } })
  t.equal(sse.statusCode, 503, 'the same for an event stream: refused before it starts')
  t.ok(sse.headers['retry-after'])
  t.equal((await app.storage.listRunIds()).length, 1, 'only the run that got its place exists')
  t.equal(gated.requests.length, 1)

  gated.open()
  t.equal((await first).statusCode, 200)
  const again = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'a dog', output_configs: ['gated_image'] } })
  t.equal(again.statusCode, 200, 'the place is free again')
})

t.test('requests waiting in line count against GENERATION_QUEUE_LIMIT', async (t) => {
  const { app, gated } = await setup(t, { GENERATION_QUEUE_LIMIT: '2', BACKEND_CONCURRENCY: '1' })
  const execute = async (input: string) => await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: input, output_configs: ['gated_image'] } })
  const accepted = [execute('a cat'), execute('a dog'), execute('a bird')]
  await gated.started()
  const queue = app.backends.queue('gated')
  while (queue.waiting < 2 || (await app.storage.listRunIds()).length < 3) await new Promise((resolve) => setTimeout(resolve, 5))
  t.equal(queue.running, 1)
  const refused = await execute('a fish')
  t.equal(refused.statusCode, 503, 'one generating and two waiting: the fourth is refused')
  t.match(refused.json(), { code: 'QUEUE_FULL' })
  t.equal((await app.storage.listRunIds()).length, 3, 'and no run was created for it')
  const status = (await app.inject({ url: '/api/backends' })).json().backends.find((b: any) => b.name === 'gated')
  t.match(status.queue, { running: 1, waiting: 2 }, 'GET /api/backends shows who waits')
  gated.open()
  t.same((await Promise.all(accepted)).map((r) => r.statusCode), [200, 200, 200])
})

t.test('50 executes at once all finish with their own outputs', async (t) => {
  const { app, stored } = await setup(t)
  const count = 50
  const answers = await Promise.all(Array.from({ length: count }, async (_, i) => {
    const res = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: `a dog with ${i} red balloons`, output_configs: ['tiny_image'], seed: 1000 + i } })
    return { i, res }
  }))
  t.ok(answers.every(({ res }) => res.statusCode === 200), 'all succeeded')
  t.equal(new Set(answers.map(({ res }) => res.json().run_id)).size, count, 'fifty runs')
  t.equal((await app.storage.listRunIds()).length, count)
  const hashes = new Set<string>()
  const builtin = new BuiltinBackend()
  for (const { i, res } of answers) {
    const answer = res.json()
    const metadata = await storedMetadata(stored, answer.run_id)
    t.equal(metadata.seed, 1000 + i)
    t.equal(metadata.input_text, `a dog with ${i} red balloons`)
    t.match(metadata.transformed_text, `a dog with ${i} red balloons`)
    t.equal(metadata.outputs.length, 1)
    const served = (await app.inject({ url: answer.media_output.url })).rawPayload
    const own = await bytesOf(builtin.generate({ run_id: answer.run_id, prompt: metadata.transformed_text, seed: 1000 + i, width: 64, height: 64, params: { media_type: 'image' } }))
    t.ok(served.equals(own), `run ${i} serves the picture of its own prompt and seed`)
    hashes.add(metadata.outputs[0].sha256)
  }
  t.equal(hashes.size, count, 'fifty different pictures')
  t.notOk((await stored.entries()).includes('output_image.png'), 'no output at the top of the store')
})

t.test('closing the app stops runs nobody waits for any more and records them as failed', async (t) => {
  const { app, stored, gated } = await setup(t)
  const outcome = app.pipeline.execute(app.pipeline.prepare({ schema: 'dada', input_text: 'a cat', output_configs: ['gated_image'] }))
  await gated.started()
  await app.close()
  const ended = await outcome
  t.match(ended, { status: 'failed', event: { code: 'SERVICE_STOPPING', stage: 'generation' } })
  const metadata = await storedMetadata(stored, ended.run_id!)
  t.equal(metadata.status, 'failed')
  t.match(metadata.errors, [{ stage: 'generation', code: 'SERVICE_STOPPING', message: 'the service is shutting down; try again shortly' }])
})
