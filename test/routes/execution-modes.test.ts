// Every mode works out of the box: a request without output_configs gets the
// first entry of its mode's preference list that can run now, and the run says
// which one and why the others were passed over. The backends are fakes that
// speak ComfyUI's protocol; "down" and "queue_full" come from what they do.
import t, { type Test } from 'tap'
import { startFakeComfyui, type FakeComfyuiBehaviour } from '../fakes/comfyui.js'
import { build, storedView, tempRunsDir } from '../helper.js'
import { storedMetadata } from '../stored-view.js'
import { pipelineLike, testConfigsDir } from '../pipeline-setup.js'

const EXECUTE = '/api/schema/pipeline/execute'

async function withComfyui (t: Test, behaviour: Partial<FakeComfyuiBehaviour> = {}, env: Record<string, string> = {}) {
  const comfyui = await startFakeComfyui({ runMs: 5, historyDelayMs: 0, ...behaviour })
  t.teardown(comfyui.close)
  const runsDir = await tempRunsDir(t)
  const comfyOnly = await pipelineLike('comfy_only', (p) => { p.default_outputs.eco = 'sd35_large' })
  const configsDir = await testConfigsDir(t, { pipelines: [comfyOnly] })
  const app = await build(t, { RUNS_DIR: runsDir, CONFIGS_DIR: configsDir, COMFYUI_URL: comfyui.url, ...env })
  return { app, comfyui, runsDir }
}

const metadataOf = async (runsDir: string, runId: string): Promise<any> => await storedMetadata(storedView(runsDir), runId)

const ecoChoices = async (app: Awaited<ReturnType<typeof build>>): Promise<any> =>
  (await app.inject({ url: '/api/schema/pipelines' })).json().pipelines.find((p: any) => p.name === 'dada').output_choices.eco

t.test('the original workshop frontend\'s call: fast without any cloud key makes a picture with the builtin generator and says so', async (t) => {
  const runsDir = await tempRunsDir(t)
  const app = await build(t, { RUNS_DIR: runsDir })
  // What its "Schnell (Cloud)" default posts, with a field this service does not know.
  const res = await app.inject({
    method: 'POST',
    url: EXECUTE,
    payload: { schema: 'dada', input_text: 'Eine Blume auf der Wiese', execution_mode: 'fast', aspect_ratio: '16:9', safety_level: 'kids', device_id: 'tablet-3' }
  })
  t.equal(res.statusCode, 200)
  const answer = res.json()
  const skipped = [
    { output_configs: ['gpt_image'], config: 'gpt_image', backend: 'openai', reason: 'not_configured', detail: 'OPENAI_API_KEY is not set' },
    { output_configs: ['openrouter_image'], config: 'openrouter_image', backend: 'openrouter', reason: 'not_configured', detail: 'OPENROUTER_API_KEY is not set' }
  ]
  t.same(answer.output_choices, { source: 'default_outputs', chosen: ['builtin_image'], skipped }, 'the answer says what ran and why the cloud was passed over')
  t.match(answer, { status: 'success', execution_mode: 'fast', media_output: { config: 'builtin_image', media_type: 'image', output: answer.run_id } })

  // The frontend takes media_output.output as the run id and asks the info route which element to use.
  const info = await app.inject({ url: `/api/media/info/${String(answer.media_output.output)}` })
  t.equal(info.statusCode, 200)
  t.match(info.json(), { run_id: answer.run_id, status: 'completed', type: 'image', url: `/api/media/image/${String(answer.run_id)}/0` })
  const image = await app.inject({ url: info.json().url })
  t.equal(image.statusCode, 200)
  t.equal(image.headers['content-type'], 'image/png')

  const metadata = await metadataOf(runsDir, answer.run_id)
  t.same(metadata.output_choices, answer.output_choices, 'the run folder keeps the choice')
  t.match(metadata.outputs, [{ config: 'builtin_image', backend: 'builtin', width: 1344, height: 768 }], 'in the asked aspect ratio')
  t.notOk('device_id' in metadata, 'a field it does not know is ignored, not stored')
  t.same((await app.inject({ url: `/api/runs/${String(answer.run_id)}` })).json().output_choices, answer.output_choices, 'and the API shows it')
})

t.test('eco takes ComfyUI when COMFYUI_URL is set', async (t) => {
  const { app, comfyui, runsDir } = await withComfyui(t)
  t.same(await ecoChoices(app), { source: 'default_outputs', chosen: ['sd35_large'], skipped: [] })
  const res = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'Ein Haus am See' } })
  t.equal(res.statusCode, 200)
  t.same(res.json().output_choices, { source: 'default_outputs', chosen: ['sd35_large'], skipped: [] })
  t.equal(comfyui.prompts.length, 1, 'the prompt went to ComfyUI')
  t.match((await metadataOf(runsDir, res.json().run_id)).outputs, [{ config: 'sd35_large', backend: 'comfyui', type: 'image' }])
})

t.test('a backend that failed is passed over for BACKEND_DOWN_MS; a success brings it back', async (t) => {
  const { app, comfyui, runsDir } = await withComfyui(t, { promptServerError: true })
  const failed = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'a cat' } })
  t.equal(failed.statusCode, 502, 'the chosen backend failed: the run fails (no second try within a run)')
  t.match(failed.json(), { code: 'BACKEND_FAILED' })

  const down = { output_configs: ['sd35_large'], config: 'sd35_large', backend: 'comfyui', reason: 'down', detail: /^its last generation failed \d+ s ago \(BACKEND_FAILED\); it is tried again \d+ s from now$/ }
  t.match(await ecoChoices(app), { chosen: ['builtin_image'], skipped: [down] }, 'GET /api/schema/pipelines says so')
  const fallback = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'a dog' } })
  t.equal(fallback.statusCode, 200)
  t.match(fallback.json().output_choices, { source: 'default_outputs', chosen: ['builtin_image'], skipped: [down] })
  t.match((await metadataOf(runsDir, fallback.json().run_id)).output_choices, { skipped: [{ reason: 'down' }] })
  t.equal(comfyui.prompts.length, 0, 'ComfyUI was not asked again')

  // Named in a request, a config is never replaced: it is tried even while down, and its success clears that.
  comfyui.setBehaviour({ promptServerError: false })
  const named = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'a bird', output_configs: ['sd35_large'] } })
  t.equal(named.statusCode, 200)
  t.same(named.json().output_choices, { source: 'request', chosen: ['sd35_large'], skipped: [] })
  t.same(await ecoChoices(app), { source: 'default_outputs', chosen: ['sd35_large'], skipped: [] }, 'up again')
})

t.test('BACKEND_DOWN_MS=0: a failed backend is never passed over', async (t) => {
  const { app } = await withComfyui(t, { promptServerError: true }, { BACKEND_DOWN_MS: '0' })
  t.equal((await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'a cat' } })).statusCode, 502)
  t.same((await ecoChoices(app)).chosen, ['sd35_large'])
})

t.test('a full queue is passed over; with no entry left the answer is 503 QUEUE_FULL with Retry-After', async (t) => {
  const { app, comfyui } = await withComfyui(t, { holdNode: '3' }, { COMFYUI_CONCURRENCY: '1', GENERATION_QUEUE_LIMIT: '0', BACKEND_CONCURRENCY: '1' })
  const held = app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'a cat' } })
  while (comfyui.prompts.length === 0) await new Promise((resolve) => setTimeout(resolve, 5))

  const queueFull = { output_configs: ['sd35_large'], config: 'sd35_large', backend: 'comfyui', reason: 'queue_full', detail: '1 running and 0 waiting, no room for more' }
  t.same(await ecoChoices(app), { source: 'default_outputs', chosen: ['builtin_image'], skipped: [queueFull] })
  const fallback = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'a dog' } })
  t.equal(fallback.statusCode, 200)
  t.same(fallback.json().output_choices, { source: 'default_outputs', chosen: ['builtin_image'], skipped: [queueFull] })

  // A mode whose only entry waits on the held queue: waiting helps, so it is QUEUE_FULL with Retry-After.
  const before = (await app.storage.listRunIds()).length
  const comfyOnly = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'comfy_only', input_text: 'a fish' } })
  t.equal(comfyOnly.statusCode, 503)
  t.same(comfyOnly.json(), { statusCode: 503, error: 'Service Unavailable', code: 'QUEUE_FULL', message: 'too many generations are waiting for comfyui; try again shortly' })
  t.match(comfyOnly.headers['retry-after'], /^\d+$/)
  const named = await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: 'a fish', output_configs: ['sd35_large'] } })
  t.match(named.json(), { code: 'QUEUE_FULL' }, 'a named config waits for its own queue, never replaced')
  t.equal((await app.storage.listRunIds()).length, before, 'nothing was written for either')
  await app.close()
  t.equal((await held).statusCode, 503, 'the held run ends when the service stops')
})
