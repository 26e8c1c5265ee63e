import t from 'tap'
import { createHash, randomUUID } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { PNG } from 'pngjs'
import { storeGeneratedMedia } from '../../services/generation/store-generated.js'
import { startFakeComfyui } from '../fakes/comfyui.js'
import { startFakeOpenai } from '../fakes/openai.js'
import { buildApp } from '../../app.js'
import { build, storedView, tempRunsDir, testConfig } from '../helper.js'
import { testConfigsDir } from '../pipeline-setup.js'

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex')
const sd35 = JSON.parse(await readFile(new URL('../../configs/outputs/sd35_large.json', import.meta.url), 'utf8'))

async function createRun (app: Awaited<ReturnType<typeof build>>): Promise<string> {
  const res = await app.inject({ method: 'POST', url: '/api/runs', payload: { schema: 'dada', execution_mode: 'eco', input_text: 'Eine Blume' } })
  return res.json().run_id
}

/** What another client (the seed's frontend) does: submit a workflow straight to ComfyUI. */
async function submitElsewhere (url: string, graph: unknown): Promise<string> {
  const promptId = randomUUID()
  const res = await fetch(`${url}/prompt`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: graph, prompt_id: promptId, client_id: 'someone-else' }) })
  if (res.status !== 200) throw new Error(`fake answered ${res.status}`)
  return promptId
}

function filledSd35 (batch = 1): unknown {
  const text = JSON.stringify(sd35.params.workflow)
    .replaceAll('"{{seed}}"', '7').replaceAll('"{{width}}"', '64').replaceAll('"{{height}}"', '48')
    .replaceAll('{{prompt}}', 'a flower').replaceAll('{{negative_prompt}}', '').replaceAll('{{filename_prefix}}', 'elsewhere/job')
  const graph = JSON.parse(text)
  for (const node of Object.values<any>(graph)) if (node.inputs?.batch_size !== undefined) node.inputs.batch_size = batch
  return graph
}

t.test('the shipped output configs load, and unconfigured backends are unavailable with a reason', async (t) => {
  const app = await build(t)
  const configs = app.backends.listOutputConfigs()
  const byName = Object.fromEntries(configs.map((c) => [c.name, c]))
  for (const name of ['builtin_image', 'builtin_audio', 'sd35_large', 'comfyui_audio', 'gpt_image', 'openrouter_image', 'replicate_flux']) {
    t.ok(byName[name], `${name} is shipped`)
  }
  t.match(byName.builtin_image, { media_type: 'image', backend: 'builtin', available: true, unavailable_reason: null })
  t.match(byName.builtin_audio, { media_type: 'audio', available: true })
  t.match(byName.sd35_large, { backend: 'comfyui', available: false, unavailable_reason: /COMFYUI_URL/ })
  t.match(byName.comfyui_audio, { media_type: 'audio', available: false })
  t.match(byName.gpt_image, { available: false, unavailable_reason: /OPENAI_API_KEY/ })
  t.match(byName.openrouter_image, { available: false, unavailable_reason: /OPENROUTER_API_KEY/ })
  t.match(byName.replicate_flux, { available: false, unavailable_reason: /REPLICATE_API_TOKEN/ })
  t.throws(() => app.backends.resolve('gpt_image'), { code: 'BACKEND_UNAVAILABLE', statusCode: 503 })
  t.throws(() => app.backends.resolve('nope'), { code: 'OUTPUT_CONFIG_NOT_FOUND', statusCode: 404 })
  t.throws(() => app.backends.register(app.backends.backend('builtin')!, { concurrency: 1 }), /twice/)
})

t.test('the service does not start with a broken output config, and says which file and why', async (t) => {
  const workflow = structuredClone(sd35.params.workflow)
  workflow['3'].inputs.seed = '{{sede}}'
  const configsDir = await testConfigsDir(t, { outputs: [{ ...sd35, name: 'broken_sd35', params: { workflow } }] })
  // No COMFYUI_URL: the workflow is checked all the same.
  await t.rejects(buildApp(testConfig(await tempRunsDir(t), { CONFIGS_DIR: configsDir })), {
    code: 'INVALID_OUTPUT_CONFIG',
    message: new RegExp(`^output config file ${join(configsDir, 'outputs', 'broken_sd35.json')} is invalid: .*node 3 \\(KSampler\\): unknown placeholder \\{\\{sede\\}\\}`)
  })
})

t.test('the builtin backend makes a real image and sound that the storage keeps', async (t) => {
  const runsDir = await tempRunsDir(t)
  const app = await build(t, { RUNS_DIR: runsDir })
  const runId = await createRun(app)
  for (const name of ['builtin_image', 'builtin_audio']) {
    const { config, backend } = app.backends.resolve(name)
    const items = backend.generate({ run_id: runId, prompt: 'a red flower in the night', seed: 42, width: 96, height: 64, params: config.params })
    const { outputs, error } = await storeGeneratedMedia(app.storage, runId, items, { config: name, backend: config.backend })
    t.equal(error, null)
    t.equal(outputs.length, 1)
  }
  const metadata = (await app.inject({ url: `/api/runs/${runId}` })).json()
  t.match(metadata.outputs, [
    { type: 'image', format: 'png', width: 96, height: 64, backend: 'builtin', config: 'builtin_image', source: { kind: 'builtin' } },
    { type: 'audio', format: 'wav', backend: 'builtin', config: 'builtin_audio' }
  ])
  t.ok(metadata.outputs[1].duration_seconds > 0.4, 'the sound has a duration')
  const image = await app.inject({ url: `/api/media/image/${runId}` })
  const png = PNG.sync.read(image.rawPayload)
  t.equal(png.width, 96)
  t.equal(png.height, 64)
  t.same(await storedView(runsDir).read(runId, 'output_audio.wav'), (await app.inject({ url: `/api/media/audio/${runId}` })).rawPayload)
})

t.test('OpenAI images through the registry against the fake', async (t) => {
  const openai = await startFakeOpenai()
  t.teardown(openai.close)
  const app = await build(t, { OPENAI_API_KEY: openai.apiKey, OPENAI_BASE_URL: openai.baseUrl })
  const runId = await createRun(app)
  const { config, backend } = app.backends.resolve('gpt_image')
  const { outputs, error } = await storeGeneratedMedia(app.storage, runId, backend.generate({ run_id: runId, prompt: 'a flower', seed: 1, width: 1024, height: 1024, params: config.params }), { config: 'gpt_image', backend: 'openai' })
  t.equal(error, null)
  t.match(outputs, [{ type: 'image', format: 'png', backend: 'openai', source: { kind: 'openai', model: 'gpt-image-1' } }])

  openai.behave({ kind: 'moderation_blocked' })
  const blocked = await storeGeneratedMedia(app.storage, runId, backend.generate({ run_id: runId, prompt: 'x', seed: 1, width: 1024, height: 1024, params: config.params }), { config: 'gpt_image', backend: 'openai' })
  t.match(blocked, { outputs: [], error: { code: 'GENERATION_BLOCKED', statusCode: 403 } })
  t.equal((await app.inject({ url: `/api/runs/${runId}` })).json().outputs.length, 1, 'the refusal stored nothing')
})

t.test('POST media with source comfyui stores every file of a prompt someone else submitted', async (t) => {
  const comfy = await startFakeComfyui({ runMs: 20 })
  t.teardown(comfy.close)
  const runsDir = await tempRunsDir(t)
  // No allowed hosts but ComfyUI's own: the lab's GPU host is reachable because it is the configured backend.
  const app = await build(t, { RUNS_DIR: runsDir, COMFYUI_URL: comfy.url, ALLOWED_FETCH_HOSTS: '' })
  t.ok(app.fetchPolicy.isAllowedHost('127.0.0.1'), 'the ComfyUI host is allowed for downloads')
  t.notOk(app.fetchPolicy.isAllowedHost('10.0.0.7'), 'other lab hosts are not')
  const runId = await createRun(app)

  const promptId = await submitElsewhere(comfy.url, filledSd35(2))
  const res = await app.inject({ method: 'POST', url: `/api/runs/${runId}/media`, payload: { source: 'comfyui', prompt_id: promptId, config: 'sd35_large', media_type: 'image' } })
  t.equal(res.statusCode, 201)
  t.match(res.json(), { index: 0, type: 'image', filename: 'output_image.png', backend: 'comfyui', config: 'sd35_large', source: { kind: 'comfyui', prompt_id: promptId, node_id: String } })
  const metadata = (await app.inject({ url: `/api/runs/${runId}` })).json()
  t.equal(metadata.outputs.length, 2, 'both images of the batch, not only the first')
  t.same(metadata.outputs.map((o: any) => o.filename), ['output_image.png', 'output_image_2.png'])
  for (const o of metadata.outputs) {
    const upstream = comfy.file('output', o.source.subfolder ?? '', o.source.original_filename)
    t.ok(upstream, `ComfyUI has ${o.source.original_filename}`)
    t.equal(o.sha256, sha256(upstream!), 'the stored bytes are ComfyUI\'s original bytes')
  }

  const unknown = await app.inject({ method: 'POST', url: `/api/runs/${runId}/media`, payload: { source: 'comfyui', prompt_id: randomUUID(), config: 'sd35_large' } })
  t.equal(unknown.statusCode, 404)
  t.match(unknown.json(), { code: 'COMFYUI_PROMPT_NOT_FOUND' })
  const badId = await app.inject({ method: 'POST', url: `/api/runs/${runId}/media`, payload: { source: 'comfyui', prompt_id: '../../history', config: 'sd35_large' } })
  t.equal(badId.statusCode, 400)
  const lying = await app.inject({ method: 'POST', url: `/api/runs/${runId}/media`, payload: { source: 'comfyui', prompt_id: promptId, config: 'sd35_large', media_type: 'audio' } })
  t.equal(lying.statusCode, 415)
  t.equal((await app.inject({ url: `/api/runs/${runId}` })).json().outputs.length, 2, 'failures added nothing')
  t.same((await storedView(runsDir).list(runId)).filter((n) => n.startsWith('.')), [])
})

t.test('a ComfyUI prompt whose later file vanished keeps the first and records the error', async (t) => {
  const comfy = await startFakeComfyui({ runMs: 20, vanish: (file) => file.filename.includes('00002') })
  t.teardown(comfy.close)
  const app = await build(t, { COMFYUI_URL: comfy.url })
  const runId = await createRun(app)
  const promptId = await submitElsewhere(comfy.url, filledSd35(2))
  const res = await app.inject({ method: 'POST', url: `/api/runs/${runId}/media`, payload: { source: 'comfyui', prompt_id: promptId, config: 'sd35_large' } })
  t.equal(res.statusCode, 201)
  const metadata = (await app.inject({ url: `/api/runs/${runId}` })).json()
  t.equal(metadata.outputs.length, 1)
  t.match(metadata.errors, [{ stage: 'media', code: String, message: /00002/, details: { prompt_id: promptId, stored: 1 } }])
})

t.test('a ComfyUI download that breaks off is ComfyUI\'s failure (502), never a bad upload; what arrived whole stays', async (t) => {
  const comfy = await startFakeComfyui({ runMs: 20, cutDownloads: (filename) => filename.includes('00002') })
  t.teardown(comfy.close)
  const runsDir = await tempRunsDir(t)
  const app = await build(t, { RUNS_DIR: runsDir, COMFYUI_URL: comfy.url })
  const runId = await createRun(app)
  const promptId = await submitElsewhere(comfy.url, filledSd35(2))
  const res = await app.inject({ method: 'POST', url: `/api/runs/${runId}/media`, payload: { source: 'comfyui', prompt_id: promptId, config: 'sd35_large' } })
  t.equal(res.statusCode, 201, 'the first image arrived whole')
  const metadata = (await app.inject({ url: `/api/runs/${runId}` })).json()
  t.equal(metadata.outputs.length, 1)
  t.equal(metadata.outputs[0].sha256, sha256(comfy.file('output', metadata.outputs[0].source.subfolder ?? '', metadata.outputs[0].source.original_filename)!))
  t.match(metadata.errors, [{ stage: 'media', code: 'BACKEND_FAILED', message: /00002/ }])

  comfy.setBehaviour({ cutDownloads: () => true })
  const other = await createRun(app)
  const broken = await app.inject({ method: 'POST', url: `/api/runs/${other}/media`, payload: { source: 'comfyui', prompt_id: promptId, config: 'sd35_large' } })
  t.equal(broken.statusCode, 502)
  t.match(broken.json(), { code: 'BACKEND_FAILED', message: /comfyui/i })
  t.same((await app.inject({ url: `/api/runs/${other}` })).json().outputs, [])
  t.same(await storedView(runsDir).list(other), ['input_text.txt', 'metadata.json'], 'no half file left')
})

t.test('COMFYUI_REQUEST_TIMEOUT_MS bounds each request to a ComfyUI that does not answer: 504', async (t) => {
  const comfy = await startFakeComfyui({ runMs: 20 })
  t.teardown(comfy.close)
  const app = await build(t, { COMFYUI_URL: comfy.url, COMFYUI_REQUEST_TIMEOUT_MS: '150' })
  const runId = await createRun(app)
  const promptId = await submitElsewhere(comfy.url, filledSd35(1))
  await comfy.finished(promptId)
  comfy.setBehaviour({ answerDelayMs: 2000 })
  const res = await app.inject({ method: 'POST', url: `/api/runs/${runId}/media`, payload: { source: 'comfyui', prompt_id: promptId, config: 'sd35_large' } })
  t.equal(res.statusCode, 504, 'the answer would have come, valid, after 2 s: only the timeout explains a 504')
  t.match(res.json(), { code: 'BACKEND_TIMEOUT' })
  t.same((await app.inject({ url: `/api/runs/${runId}` })).json().outputs, [])
})

t.test('without COMFYUI_URL the comfyui source is a clear 503', async (t) => {
  const app = await build(t)
  const runId = await createRun(app)
  const res = await app.inject({ method: 'POST', url: `/api/runs/${runId}/media`, payload: { source: 'comfyui', prompt_id: randomUUID(), config: 'sd35_large' } })
  t.equal(res.statusCode, 503)
  t.match(res.json(), { code: 'BACKEND_UNAVAILABLE', message: /COMFYUI_URL/ })
})

t.test('GET /api/backends: configuration, queues and upstream health', async (t) => {
  const comfy = await startFakeComfyui()
  const app = await build(t, { COMFYUI_URL: comfy.url })
  const byName = async () => Object.fromEntries((await app.inject({ url: '/api/backends' })).json().backends.map((b: any) => [b.name, b]))
  const status = await byName()
  t.match(status.comfyui, { available: true, unavailable_reason: null, queue: { running: 0, waiting: 0 }, health: { ok: true, details: { comfyui_version: String } } })
  t.match(status.builtin, { available: true, health: null })
  t.match(status.openai, { available: false, unavailable_reason: /OPENAI_API_KEY/, health: null })
  await comfy.close()
  t.match((await byName()).comfyui, { available: true, health: { ok: false } }, 'a ComfyUI that went away is reported, not hidden')
  t.throws(() => app.backends.queue('nope'), /no backend/)
})
