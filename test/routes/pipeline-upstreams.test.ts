import t, { type Test } from 'tap'
import { readFile } from 'node:fs/promises'
import { startFakeComfyui, type FakeComfyuiBehaviour } from '../fakes/comfyui.js'
import { llmReplies, startFakeLlm, type FakeLlmReply, type FakeLlmRequest } from '../fakes/llm.js'
import { FAKE_JPEG, startFakeOpenrouter } from '../fakes/openrouter.js'
import { startFakeReplicate } from '../fakes/replicate.js'
import { loadConfig } from '../../config.js'
import { build, storedView, tempRunsDir } from '../helper.js'
import { storedMetadata } from '../stored-view.js'
import { testConfigsDir, tinyImage } from '../pipeline-setup.js'

// The pipeline against the protocol fakes: an OpenAI-compatible chat server
// (as Ollama speaks it) for the text stages, and ComfyUI for generation.

const EXECUTE = '/api/schema/pipeline/execute'
const DADA = JSON.parse(await readFile(new URL('../../configs/pipelines/dada.json', import.meta.url), 'utf8'))
const DADA_INSTRUCTION: string = DADA.instruction
const DADA_NEGATIVE: string = DADA.negative_prompt

type TextStage = 'translation' | 'safety' | 'pre_output_safety' | 'interception'

/** Which text stage a chat request is, from its system message. */
function stageOf (request: FakeLlmRequest): TextStage {
  const system: string = request.body.messages.find((m: { role: string }) => m.role === 'system').content
  if (system.startsWith('You translate')) return 'translation'
  if (system.includes('the final prompt about to be sent')) return 'pre_output_safety'
  if (system.startsWith('You are the safety check')) return 'safety'
  return 'interception'
}

const ALLOWED = '{"allowed": true, "reason": null, "codes": []}'

/** A model that does each stage's job, with `overrides` for the stage under test. */
function model (overrides: Partial<Record<TextStage, FakeLlmReply>> = {}) {
  return (request: FakeLlmRequest): FakeLlmReply => {
    const stage = stageOf(request)
    if (overrides[stage] !== undefined) return overrides[stage]
    switch (stage) {
      case 'translation': return llmReplies.text('A flower on the meadow')
      case 'interception': return llmReplies.withThinking('Dada: collage, chance.', 'A Dada photomontage of a flower on a meadow, torn newspaper letters and a clockwork bird')
      default: return llmReplies.text(ALLOWED)
    }
  }
}

async function withLlm (t: Test, responder: ReturnType<typeof model>, env: Record<string, string> = {}) {
  const llm = await startFakeLlm({ responder, models: ['llama3.2', 'gpt-4.1-mini'] })
  t.teardown(llm.close)
  const runsDir = await tempRunsDir(t)
  const configsDir = await testConfigsDir(t, { outputs: [tinyImage] })
  const app = await build(t, {
    RUNS_DIR: runsDir,
    CONFIGS_DIR: configsDir,
    LLM_ECO_BASE_URL: `${llm.url}/v1`,
    LLM_ECO_MODEL: 'llama3.2',
    ...env
  })
  return { app, llm, runsDir }
}

t.test('with an LLM configured the text stages use it: translated, transformed and checked by the model', async (t) => {
  const { app, llm, runsDir } = await withLlm(t, model(), {
    // a model without a server: fast stays builtin
    LLM_FAST_BASE_URL: '',
    LLM_FAST_MODEL: 'gpt-4.1-mini'
  })
  const res = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'Eine Blume auf der Wiese', output_configs: ['tiny_image'] } })
  t.equal(res.statusCode, 200)
  const answer = res.json()
  t.equal(answer.transformed_text, 'A Dada photomontage of a flower on a meadow, torn newspaper letters and a clockwork bird', 'the model\'s answer, its reasoning stripped')
  const metadata = await storedMetadata(storedView(runsDir), answer.run_id)
  t.same(metadata.stages.map((s: any) => [s.stage, s.provider, s.model]), [
    ['translation', 'llm', 'llama3.2'], ['safety', 'llm', 'llama3.2'], ['interception', 'llm', 'llama3.2'],
    ['pre_output_safety', 'llm', 'llama3.2'], ['generation', 'builtin', 'procedural-v1']
  ])
  t.match(metadata.stages[0], { output: 'A flower on the meadow', details: { translated: true, source_language: 'de' } })
  t.match(metadata.stages[1], { output: 'Eine Blume auf der Wiese\nA flower on the meadow', decision: { allowed: true, codes: [], fallback_used: false } })
  t.match(metadata.stages[3], { output: answer.transformed_text }, 'each check records the text it checked')
  t.match(metadata.stages[2].details, { pipeline: 'dada', thinking_stripped: true })
  t.equal((await storedView(runsDir).read(answer.run_id, 'transformed_text.txt')).toString(), answer.transformed_text)

  const chats = llm.requests.filter((r) => r.path === '/v1/chat/completions')
  t.same(chats.map(stageOf), ['translation', 'safety', 'interception', 'pre_output_safety'])
  t.ok(chats.every((r) => r.body.model === 'llama3.2' && r.body.stream === false))
  t.equal(chats[0]!.body.messages.at(-1).content, 'Eine Blume auf der Wiese')
  t.equal(chats[1]!.body.messages.at(-1).content, 'Text to check:\n<<<\nEine Blume auf der Wiese\nA flower on the meadow\n>>>', 'the input check sees the child\'s own words with their translation')
  t.equal(chats[2]!.body.messages[0].content, DADA_INSTRUCTION, 'the pipeline\'s own instruction')
  t.equal(chats[2]!.body.messages.at(-1).content, 'A flower on the meadow', 'interception works on the translation')
  t.match(chats[3]!.body.messages.at(-1).content, answer.transformed_text, 'the second check sees the transformed prompt')
  t.match(chats[3]!.body.messages[0].content, /image generator/)
  t.notOk(chats[0]!.headers.authorization, 'no key for eco')

  const modes = (await app.inject({ url: '/api/schema/pipelines' })).json().execution_modes
  t.same(modes, { eco: { provider: 'llm', model: 'llama3.2', llm_steps: ['translation', 'safety', 'interception'] }, fast: { provider: 'builtin', model: null, llm_steps: [] }, ultra: { provider: 'builtin', model: null, llm_steps: [] } }, 'fast has no server, so it stays builtin')
})

t.test('LLM_STEPS: the LLM translates and transforms, the word lists keep the safety checks', async (t) => {
  const { app, llm, runsDir } = await withLlm(t, model(), { LLM_STEPS: 'translation, interception' })
  const res = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'Eine Blume auf der Wiese', output_configs: ['tiny_image'] } })
  t.equal(res.statusCode, 200)
  const metadata = await storedMetadata(storedView(runsDir), res.json().run_id)
  t.same(metadata.stages.slice(0, 4).map((s: any) => [s.stage, s.provider]), [['translation', 'llm'], ['safety', 'builtin'], ['interception', 'llm'], ['pre_output_safety', 'builtin']])
  t.same(llm.requests.filter((r) => r.path === '/v1/chat/completions').map(stageOf), ['translation', 'interception'], 'no safety question reached the model')
  t.match((await app.inject({ url: '/api/schema/pipelines' })).json().execution_modes.eco, { provider: 'llm', llm_steps: ['translation', 'interception'] })

  const blocked = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'ein Messer', output_configs: ['tiny_image'] } })
  t.equal(blocked.statusCode, 403, 'the word lists block, whatever the model would have said')
  t.match(blocked.json(), { stage: 'safety', codes: ['violence.weapon'] })
  t.throws(() => loadConfig({ LLM_STEPS: 'translation,moderation' }), /LLM_STEPS/, 'an unknown step is refused at start')
})

t.test('fast and ultra use their own server and key', async (t) => {
  const llm = await startFakeLlm({ responder: model() })
  t.teardown(llm.close)
  const configsDir = await testConfigsDir(t, { outputs: [tinyImage] })
  const app = await build(t, { CONFIGS_DIR: configsDir, LLM_FAST_BASE_URL: `${llm.url}/v1`, LLM_FAST_MODEL: 'gpt-4.1-mini', LLM_FAST_API_KEY: 'sk-test' })
  const res = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'Eine Blume', execution_mode: 'ultra', output_configs: ['tiny_image'] } })
  t.equal(res.statusCode, 200)
  t.match(res.json().stages[0], { provider: 'llm', model: 'gpt-4.1-mini' })
  t.ok(llm.requests.length >= 4)
  t.ok(llm.requests.every((r) => r.headers.authorization === 'Bearer sk-test'))
  const eco = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'Eine Blume', output_configs: ['tiny_image'] } })
  t.match(eco.json().stages[0], { provider: 'builtin' }, 'eco without a server: builtin')
})

t.test('a safety answer that is not a verdict: the word lists decide, and the record says so', async (t) => {
  const { app, runsDir } = await withLlm(t, model({ safety: llmReplies.garbage(), pre_output_safety: llmReplies.garbage() }))
  const res = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'Eine Blume auf der Wiese', output_configs: ['tiny_image'] } })
  t.equal(res.statusCode, 200)
  const metadata = await storedMetadata(storedView(runsDir), res.json().run_id)
  for (const stage of metadata.stages.filter((s: any) => s.stage.endsWith('safety'))) {
    t.match(stage, {
      provider: 'builtin',
      decision: { allowed: true, fallback_used: true },
      details: { fallback_reason: String, llm_model: 'llama3.2', llm_answer: /depends on what you mean/ }
    }, stage.stage)
  }

  // The fallback is no way around the check.
  const { app: strict } = await withLlm(t, model({ translation: llmReplies.text('A child with a pistol'), safety: llmReplies.garbage() }))
  const blocked = await strict.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'Ein Kind mit einer Pistole', output_configs: ['tiny_image'] } })
  t.equal(blocked.statusCode, 403)
  t.match(blocked.json(), { status: 'blocked', stage: 'safety', codes: ['violence.weapon'] })
})

t.test('the LLM blocks the transformed prompt at stage 3 with its own reason', async (t) => {
  const { app, runsDir } = await withLlm(t, model({ pre_output_safety: llmReplies.text('```json\n{"allowed": false, "reason": "That sounds too scary for a picture.", "codes": ["horror.scary"]}\n```') }))
  const res = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'Eine Blume auf der Wiese', output_configs: ['tiny_image'] } })
  t.equal(res.statusCode, 403)
  t.same(res.json(), { status: 'blocked', run_id: res.json().run_id, stage: 'pre_output_safety', reason: 'That sounds too scary for a picture.', codes: ['horror.scary'] })
  const metadata = await storedMetadata(storedView(runsDir), res.json().run_id)
  t.equal(metadata.status, 'blocked')
  t.match(metadata.stages.at(-1), { stage: 'pre_output_safety', status: 'blocked', provider: 'llm', decision: { allowed: false, codes: ['horror.scary'] } })
  t.same(metadata.outputs, [])
})

t.test('an LLM that answers too slowly, or not at all: 504, the run failed with the error at its stage', async (t) => {
  const slow = await withLlm(t, model({ translation: llmReplies.slow(30_000) }), { LLM_TIMEOUT_MS: '150' })
  const res = await slow.app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'Eine Blume auf der Wiese', output_configs: ['tiny_image'] } })
  t.equal(res.statusCode, 504)
  t.match(res.json(), { statusCode: 504, error: 'Gateway Timeout', code: 'BACKEND_TIMEOUT', message: /backend llm timed out: POST http:\/\/127\.0\.0\.1:\d+\/v1\/chat\/completions gave no answer within 150 ms/ })
  const runId = res.headers['x-run-id'] as string
  const metadata = await storedMetadata(storedView(slow.runsDir), runId)
  t.equal(metadata.status, 'failed')
  t.same(metadata.stages.map((s: any) => [s.stage, s.status]), [['translation', 'failed']])
  t.match(metadata.stages[0], { error: { code: 'BACKEND_TIMEOUT' }, duration_ms: Number })
  t.match(metadata.errors, [{ stage: 'translation', code: 'BACKEND_TIMEOUT' }])
  t.same(metadata.outputs, [])

  const silent = await withLlm(t, model({ interception: llmReplies.never() }), { LLM_TIMEOUT_MS: '150' })
  const hung = await silent.app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'Eine Blume auf der Wiese', output_configs: ['tiny_image'] } })
  t.equal(hung.statusCode, 504)
  const hungMetadata = await storedMetadata(storedView(silent.runsDir), hung.headers['x-run-id'] as string)
  t.same(hungMetadata.stages.map((s: any) => [s.stage, s.status]), [['translation', 'completed'], ['safety', 'completed'], ['interception', 'failed']])
  t.equal(hungMetadata.transformed_text, null)
})

t.test('an LLM server error is a 502 naming the server\'s own message', async (t) => {
  const { app, runsDir } = await withLlm(t, model({ safety: llmReplies.serverError() }))
  const res = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'Eine Blume', output_configs: ['tiny_image'] } })
  t.equal(res.statusCode, 502)
  t.match(res.json(), { code: 'BACKEND_FAILED', message: /answered 500: llama runner process has terminated: signal: killed/ })
  t.match(await storedMetadata(storedView(runsDir), res.headers['x-run-id'] as string), { status: 'failed', errors: [{ stage: 'safety', code: 'BACKEND_FAILED' }] })
})

/** sd35_large with a second image decoded by node 12, which the fake can make fail. */
async function twoImageConfig (): Promise<Record<string, unknown>> {
  const sd35 = JSON.parse(await readFile(new URL('../../configs/outputs/sd35_large.json', import.meta.url), 'utf8'))
  sd35.name = 'sd35_two_images'
  sd35.params.workflow['12'] = { class_type: 'VAEDecodeTiled', inputs: { samples: ['3', 0], vae: ['4', 2], tile_size: 512 } }
  sd35.params.workflow['13'] = { class_type: 'SaveImage', inputs: { filename_prefix: '{{filename_prefix}}_tiled', images: ['12', 0] } }
  return sd35
}

async function withComfyui (t: Test, behaviour: Partial<FakeComfyuiBehaviour> = {}, env: Record<string, string> = {}) {
  const comfyui = await startFakeComfyui(behaviour)
  t.teardown(comfyui.close)
  const runsDir = await tempRunsDir(t)
  const configsDir = await testConfigsDir(t, { outputs: [await twoImageConfig()] })
  const app = await build(t, { RUNS_DIR: runsDir, CONFIGS_DIR: configsDir, COMFYUI_URL: comfyui.url, ...env })
  return { app, comfyui, runsDir }
}

t.test('ComfyUI: the transformed prompt and the run\'s seed go into the workflow; the image is stored', async (t) => {
  const { app, comfyui, runsDir } = await withComfyui(t)
  const res = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'Eine Blume auf der Wiese', output_configs: ['sd35_large'], seed: 123456789, aspect_ratio: '3:2' } })
  t.equal(res.statusCode, 200)
  const answer = res.json()
  const graph = comfyui.prompts[0]!.prompt!
  t.equal(graph['6']!.inputs!.text, answer.transformed_text)
  t.equal(graph['3']!.inputs!.seed, 123456789)
  t.equal(graph['7']!.inputs!.text, DADA_NEGATIVE, 'the pipeline\'s negative prompt')
  t.same([graph['5']!.inputs!.width, graph['5']!.inputs!.height], [1280, 832])
  const metadata = await storedMetadata(storedView(runsDir), answer.run_id)
  const output = metadata.outputs[0]
  t.match(output, { config: 'sd35_large', backend: 'comfyui', type: 'image', source: { kind: 'comfyui', prompt_id: comfyui.prompts[0]!.prompt_id, node_id: '9' } })
  t.match(metadata.stages.at(-1), { stage: 'generation', provider: 'comfyui', details: { config: 'sd35_large', width: 1280, height: 832, seed: 123456789, negative_prompt: DADA_NEGATIVE } })

  const own = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'Ein Baum', output_configs: ['sd35_large'], negative_prompt: 'no people' } })
  t.equal(own.statusCode, 200)
  t.equal(comfyui.prompts[1]!.prompt!['7']!.inputs!.text, 'no people', 'a request\'s own negative prompt wins')
  const served = (await app.inject({ url: answer.media_output.url })).rawPayload
  t.same(served, comfyui.file('output', output.source.subfolder, output.source.original_filename))
})

t.test('ComfyUI fails after one of two images: 502, the run failed, the first image kept and served', async (t) => {
  const { app, comfyui, runsDir } = await withComfyui(t, { failNode: { node: '12', exceptionMessage: 'Allocation on device\n', exceptionType: 'torch.OutOfMemoryError' } })
  const res = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'a cat', output_configs: ['sd35_two_images'] } })
  t.equal(res.statusCode, 502)
  t.match(res.json(), { statusCode: 502, code: 'BACKEND_FAILED', message: /node 12 \(VAEDecodeTiled\) failed: torch\.OutOfMemoryError: Allocation on device/ })
  const runId = res.headers['x-run-id'] as string
  const metadata = await storedMetadata(storedView(runsDir), runId)
  t.equal(metadata.status, 'failed')
  t.equal(metadata.outputs.length, 1)
  t.match(metadata.outputs[0], { filename: 'output_image.png', source: { node_id: '9' } })
  t.match(metadata.errors, [{ stage: 'generation', code: 'BACKEND_FAILED', message: /node 12/ }])
  t.match(metadata.stages.at(-1), { stage: 'generation', status: 'failed', output: 'output_image.png' })
  const image = await app.inject({ url: `/api/media/image/${runId}` })
  t.equal(image.statusCode, 200)
  t.same(image.rawPayload, comfyui.file('output', metadata.outputs[0].source.subfolder, metadata.outputs[0].source.original_filename))
  t.match((await app.inject({ url: `/api/media/info/${runId}` })).json(), { status: 'failed', type: 'image' })
})

t.test('ComfyUI that takes longer than COMFYUI_TIMEOUT_MS: 504, the run failed', async (t) => {
  const { app, runsDir } = await withComfyui(t, { runMs: 5000 }, { COMFYUI_TIMEOUT_MS: '200' })
  const res = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'a cat', output_configs: ['sd35_large'] } })
  t.equal(res.statusCode, 504)
  t.match(res.json(), { code: 'BACKEND_TIMEOUT', message: /backend comfyui timed out/ })
  t.match(await storedMetadata(storedView(runsDir), res.headers['x-run-id'] as string), { status: 'failed', outputs: [], errors: [{ stage: 'generation', code: 'BACKEND_TIMEOUT' }] })
})

t.test('OpenRouter through the pipeline: a JPEG declared as PNG in wrapped base64 is stored as the JPEG it is', async (t) => {
  const openrouter = await startFakeOpenrouter()
  t.teardown(openrouter.close)
  const runsDir = await tempRunsDir(t)
  const app = await build(t, { RUNS_DIR: runsDir, OPENROUTER_API_KEY: openrouter.apiKey, OPENROUTER_BASE_URL: openrouter.baseUrl })
  openrouter.behave({ kind: 'success', images: [{ bytes: FAKE_JPEG, declaredMime: 'image/png', wrapAt: 76 }] })
  const res = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'bauhaus', input_text: 'Ein Haus am See', output_configs: ['openrouter_image'] } })
  t.equal(res.statusCode, 200)
  const { run_id: runId } = res.json()
  const output = (await storedMetadata(storedView(runsDir), runId)).outputs[0]
  t.match(output, {
    type: 'image', format: 'jpg', mime_type: 'image/jpeg', filename: 'output_image.jpg', backend: 'openrouter', config: 'openrouter_image',
    file_size_bytes: FAKE_JPEG.length, source: { kind: 'openrouter', declared_mime_type: 'image/png', model: String }
  })
  t.same(await storedView(runsDir).read(runId, 'output_image.jpg'), FAKE_JPEG)
  const served = await app.inject({ url: `/api/media/image/${runId}` })
  t.equal(served.headers['content-type'], 'image/jpeg', 'served by what the bytes are, not what OpenRouter said')
  t.match(openrouter.requests.at(-1)!.body, { modalities: ['image', 'text'] })
})

t.test('Replicate through the pipeline: polled to success, the output fetched with the token and stored', async (t) => {
  const replicate = await startFakeReplicate()
  t.teardown(replicate.close)
  const runsDir = await tempRunsDir(t)
  const app = await build(t, { RUNS_DIR: runsDir, REPLICATE_API_TOKEN: replicate.apiToken, REPLICATE_BASE_URL: replicate.baseUrl })
  replicate.behave({ statuses: ['starting', 'processing', 'succeeded'], output: 'array' })
  const res = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'Ein Fuchs im Schnee', output_configs: ['replicate_flux'] } })
  t.equal(res.statusCode, 200)
  const { run_id: runId } = res.json()
  const metadata = await storedMetadata(storedView(runsDir), runId)
  const [prediction] = [...replicate.predictions.values()]
  t.equal(replicate.creates().length, 1, 'created once')
  t.match(metadata.outputs, [{ type: 'image', format: 'png', backend: 'replicate', config: 'replicate_flux', source: { kind: 'replicate', prediction_id: prediction!.id, url: String } }])
  t.equal(prediction!.input.prompt, metadata.transformed_text, 'Replicate got the transformed prompt')
  t.equal(prediction!.input.seed, metadata.seed, 'and the run\'s seed')
  const delivery = replicate.requests.filter((r) => r.path.startsWith('/delivery/'))
  t.ok(delivery.length > 0 && delivery.every((r) => r.headers.authorization === `Bearer ${replicate.apiToken}`), 'the file was fetched with the token')
  t.equal(metadata.outputs.length, delivery.length, 'every image of the output list is stored')
  const served = await app.inject({ url: `/api/media/image/${runId}/0` })
  t.equal(served.statusCode, 200)
  t.equal(served.headers.etag, `"${metadata.outputs[0].sha256}"`)
})

t.test('ComfyUI outputs of every kind are stored as what their bytes are, whatever /view claims', async (t) => {
  const comfyui = await startFakeComfyui({ runMs: 20, contentTypes: { '.flac': 'application/octet-stream', '.mp4': 'image/png', '.glb': 'text/plain' } })
  t.teardown(comfyui.close)
  const runsDir = await tempRunsDir(t)
  const sd35 = JSON.parse(await readFile(new URL('../../configs/outputs/sd35_large.json', import.meta.url), 'utf8'))
  const clip = {
    ...sd35,
    name: 'comfyui_clip',
    media_type: 'video',
    params: {
      workflow: {
        ...sd35.params.workflow,
        9: { class_type: 'SaveVideo', inputs: { filename_prefix: '{{filename_prefix}}', video: ['8', 0] } },
        21: { class_type: 'VHS_VideoCombine', inputs: { images: ['8', 0], frame_rate: 12, filename_prefix: '{{filename_prefix}}_vhs' } },
        22: { class_type: 'SaveGLB', inputs: { mesh: ['8', 0], filename_prefix: '{{filename_prefix}}_mesh' } }
      }
    }
  }
  const configsDir = await testConfigsDir(t, { outputs: [clip] })
  const app = await build(t, { RUNS_DIR: runsDir, CONFIGS_DIR: configsDir, COMFYUI_URL: comfyui.url })

  const sound = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'Ein Vogel singt', output_configs: ['comfyui_audio'] } })
  t.equal(sound.statusCode, 200)
  const audio = (await storedMetadata(storedView(runsDir), sound.json().run_id)).outputs
  t.match(audio, [{ type: 'audio', format: 'flac', mime_type: 'audio/flac', filename: 'output_audio.flac', backend: 'comfyui', source: { kind: 'comfyui', node_id: String } }])
  t.ok(audio[0].duration_seconds > 0, 'with its duration')
  t.equal(sound.json().media_output.media_type, 'audio')

  const film = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'Ein Zug fährt', output_configs: ['comfyui_clip'] } })
  t.equal(film.statusCode, 200)
  const { run_id: runId } = film.json()
  const outputs = (await storedMetadata(storedView(runsDir), runId)).outputs
  t.same(outputs.map((o: any) => [o.type, o.format, o.filename]), [
    ['video', 'mp4', 'output_video.mp4'],
    ['video', 'mp4', 'output_video_2.mp4'],
    ['model3d', 'glb', 'output_model3d.glb']
  ])
  t.match(outputs[0], { mime_type: 'video/mp4', width: Number, height: Number, duration_seconds: Number })
  const model = await app.inject({ url: `/api/media/model3d/${runId}` })
  t.equal(model.headers['content-type'], 'model/gltf-binary')
  t.same(model.rawPayload, await storedView(runsDir).read(runId, 'output_model3d.glb'))
})
