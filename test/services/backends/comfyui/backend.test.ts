import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import type { Readable } from 'node:stream'
import { buffer } from 'node:stream/consumers'
import t, { type Test } from 'tap'
import {
  ComfyuiBackend, ComfyuiClient, describeExecutionFailure, fillWorkflow, listOutputFiles, readApiWorkflow,
  type ComfyuiBackendOptions, type ComfyuiHistoryEntry, type ComfyuiWorkflow
} from '../../../services/backends/comfyui.js'
import type { GenerationRequest, MediaItem } from '../../../services/backends/types.js'
import { startFakeComfyui, type FakeComfyui, type FakeComfyuiBehaviour, type Graph } from '../../fakes/comfyui.js'
import { fixtures } from '../../fixtures/media.js'

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
const RUN_ID = '0193f1e2-7c4a-7b9e-8d2f-4c1a2b3c4d5e'

interface OutputConfig {
  name: string
  media_type: string
  backend: string
  params: { workflow: ComfyuiWorkflow }
  defaults: { width?: number, height?: number }
}

const readConfig = (name: string): OutputConfig =>
  JSON.parse(readFileSync(new URL(`../../../configs/outputs/${name}.json`, import.meta.url), 'utf8')) as OutputConfig
const sd35 = readConfig('sd35_large')
const stableAudio = readConfig('comfyui_audio')

/** The SD3.5 graph with changes: extra nodes, or edited inputs. */
function imageWorkflow (change: (graph: ComfyuiWorkflow) => void = () => {}): ComfyuiWorkflow {
  const graph = structuredClone(sd35.params.workflow)
  change(graph)
  return graph
}

/** A decoded image piped to any output node: enough graph for the fake to run it. */
function outputWorkflow (nodes: Record<string, { class_type: string, inputs?: Record<string, unknown> }>): ComfyuiWorkflow {
  return imageWorkflow((graph) => {
    delete graph['9']
    Object.assign(graph, nodes)
  })
}

function request (workflow: ComfyuiWorkflow, overrides: Partial<GenerationRequest> = {}): GenerationRequest {
  return {
    run_id: RUN_ID,
    prompt: 'a red fox jumping over a snowy fence, crayon drawing',
    negative_prompt: 'blurry, text',
    seed: 1234567890123,
    width: 1024,
    height: 768,
    params: { workflow },
    ...overrides
  }
}

interface Setup {
  fake: FakeComfyui
  backend: ComfyuiBackend
  client: ComfyuiClient
}

async function setup (t: Test, behaviour: Partial<FakeComfyuiBehaviour> = {}, options: Omit<ComfyuiBackendOptions, 'baseUrl'> = {}): Promise<Setup> {
  const fake = await startFakeComfyui(behaviour)
  t.teardown(() => fake.close())
  const backend = new ComfyuiBackend({ baseUrl: fake.url, pollIntervalMs: 25, timeouts: { request: 2000, overall: 10_000 }, ...options })
  return { fake, backend, client: backend.client as ComfyuiClient }
}

interface Collected {
  items: Array<{ bytes: Buffer, source: MediaItem['source'], media_type: MediaItem['media_type'] }>
  error: (Error & { code?: string }) | null
}

// Consumes like the storage service: each stream to its end before asking for the next item.
async function collect (iterable: AsyncIterable<MediaItem>): Promise<Collected> {
  const items: Collected['items'] = []
  try {
    for await (const item of iterable) {
      const bytes = Buffer.isBuffer(item.body) ? item.body : await buffer(item.body as Readable)
      items.push({ bytes, source: item.source, media_type: item.media_type })
    }
  } catch (err) {
    return { items, error: err as Collected['error'] }
  }
  return { items, error: null }
}

/** output or temp: provenance the comfyui backend adds to the shared source record */
const fileType = (source: MediaItem['source']): unknown => (source as { type?: unknown }).type

function storedBytes (fake: FakeComfyui, source: MediaItem['source']): Buffer | undefined {
  return fake.file(String(fileType(source)), source.subfolder ?? '', source.original_filename ?? '')
}

const lastPrompt = (fake: FakeComfyui): Graph => fake.prompts.at(-1)?.prompt as Graph

t.test('several images from one node and outputs from several nodes, with their bytes and provenance', async (t) => {
  const { fake, backend } = await setup(t)
  const workflow = imageWorkflow((graph) => {
    (graph['5'] as { inputs: Record<string, unknown> }).inputs.batch_size = 2
    graph['10'] = { class_type: 'SaveImage', inputs: { filename_prefix: 'gallery/fox', images: ['8', 0] } }
    graph['11'] = { class_type: 'PreviewImage', inputs: { images: ['8', 0] } }
  })
  const { items, error } = await collect(backend.generate(request(workflow)))
  t.equal(error, null)
  t.equal(items.length, 6, 'two images each from the save nodes 9 and 10 and the preview node 11')
  const promptId = fake.prompts[0]?.prompt_id
  t.match(promptId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'our own lowercase UUID')
  const prefix = (lastPrompt(fake)['9']?.inputs?.filename_prefix as string).split('/')[1]
  t.same(items.map((i) => [i.source.node_id, i.source.subfolder, fileType(i.source)]), [
    ['9', 'runstore', 'output'], ['9', 'runstore', 'output'],
    ['10', 'gallery', 'output'], ['10', 'gallery', 'output'],
    ['11', '', 'temp'], ['11', '', 'temp']
  ])
  t.same(items.slice(0, 4).map((i) => i.source.original_filename), [
    `${prefix}_00001_.png`, `${prefix}_00002_.png`, 'fox_00001_.png', 'fox_00002_.png'
  ])
  for (const item of items) {
    t.same(item.source.kind, 'comfyui')
    t.equal(item.source.prompt_id, promptId)
    t.equal(item.media_type, undefined, 'the storage decides the type from the bytes')
    t.same(item.bytes.subarray(0, 8), PNG_SIGNATURE)
    t.same(item.bytes, storedBytes(fake, item.source), `bytes of ${item.source.original_filename as string}`)
  }
  t.equal(new Set(items.map((i) => i.bytes.toString('hex'))).size, items.length, 'every file has its own bytes')
})

t.test('temp previews are downloaded from the temp folder, batches and all', async (t) => {
  const { fake, backend } = await setup(t)
  const workflow = outputWorkflow({ 11: { class_type: 'PreviewImage', inputs: { images: ['8', 0] } } })
  ;(workflow['5'] as { inputs: Record<string, unknown> }).inputs.batch_size = 3
  const { items, error } = await collect(backend.generate(request(workflow)))
  t.equal(error, null)
  t.equal(items.length, 3)
  for (const item of items) {
    t.equal(fileType(item.source), 'temp')
    t.match(item.source.original_filename, /^ComfyUI_temp_[a-z]{5}_0000\d_\.png$/)
    t.same(item.bytes, storedBytes(fake, item.source))
  }
  const views = fake.requests.filter((r) => r.url.startsWith('/view'))
  t.equal(views.length, 3)
  for (const view of views) {
    const query = new URL(view.url, fake.url).searchParams
    t.equal(query.get('type'), 'temp')
    t.notOk(query.has('preview'), 'never asks for a re-encoded preview')
  }
})

t.test('audio from the Stable Audio config arrives under `audio`, whatever Content-Type /view claims', async (t) => {
  const { fake, backend } = await setup(t, { contentTypes: { '.flac': 'application/octet-stream' } })
  const { items, error } = await collect(backend.generate(request(stableAudio.params.workflow)))
  t.equal(error, null)
  t.equal(items.length, 1)
  const [audio] = items
  t.equal(audio?.source.node_id, '19')
  t.match(audio?.source.original_filename, /_00001_\.flac$/)
  t.same(audio?.bytes, readFileSync(fixtures.flac.file))
  t.equal(audio?.bytes.subarray(0, 4).toString('latin1'), 'fLaC')
  t.equal(audio?.media_type, undefined)
  const graph = lastPrompt(fake)
  t.equal(graph['6']?.inputs?.text, 'a red fox jumping over a snowy fence, crayon drawing')
  t.equal(graph['3']?.inputs?.seed, 1234567890123)
})

t.test('video under images + animated, VHS gifs, 3D models; text and latents are skipped', async (t) => {
  const { fake, backend } = await setup(t, { contentTypes: { '.png': 'text/plain' } })
  const workflow = outputWorkflow({
    20: { class_type: 'SaveVideo', inputs: { filename_prefix: 'video/clip', video: ['8', 0] } },
    21: { class_type: 'VHS_VideoCombine', inputs: { images: ['8', 0], frame_rate: 12, filename_prefix: 'AnimateDiff' } },
    22: { class_type: 'SaveGLB', inputs: { mesh: ['8', 0], filename_prefix: 'mesh/ComfyUI' } },
    23: { class_type: 'PreviewAny', inputs: { source: ['6', 0] } },
    24: { class_type: 'SaveLatent', inputs: { samples: ['3', 0], filename_prefix: 'latents/ComfyUI' } },
    25: { class_type: 'SaveImage', inputs: { filename_prefix: '{{filename_prefix}}', images: ['8', 0] } }
  })
  const { items, error } = await collect(backend.generate(request(workflow)))
  t.equal(error, null)
  t.same(items.map((i) => [i.source.node_id, i.source.subfolder, i.source.original_filename?.replace(/^[^_]+_[0-9a-f]{8}/, 'P')]), [
    ['20', 'video', 'clip_00001_.mp4'],
    ['21', '', 'AnimateDiff_00001.mp4'],
    ['22', 'mesh', 'ComfyUI_00001_.glb'],
    ['25', 'runstore', 'P_00001_.png']
  ])
  const mp4 = readFileSync(fixtures.mp4.file)
  t.same(items[0]?.bytes, mp4)
  t.same(items[1]?.bytes, mp4)
  t.same(items[2]?.bytes, readFileSync(fixtures.glb.file))
  t.same(items[3]?.bytes.subarray(0, 8), PNG_SIGNATURE, 'a PNG served as text/plain is still a PNG')
  t.notOk(fake.requests.some((r) => r.url.includes('.latent')), 'latent tensors are not media')
})

t.test('placeholders: numbers stay numbers, the prompt lands in CLIPTextEncode, every job gets its own filename prefix', async (t) => {
  const { fake, backend } = await setup(t)
  const first = await collect(backend.generate(request(sd35.params.workflow)))
  const second = await collect(backend.generate(request(sd35.params.workflow)))
  t.equal(first.error, null)
  t.equal(second.error, null)
  const [a, b] = fake.prompts.map((p) => p.prompt as Graph)
  t.equal(a?.['3']?.inputs?.seed, 1234567890123)
  t.equal(typeof a?.['3']?.inputs?.seed, 'number')
  t.equal(a?.['5']?.inputs?.width, 1024)
  t.equal(a?.['5']?.inputs?.height, 768)
  t.equal(a?.['6']?.inputs?.text, 'a red fox jumping over a snowy fence, crayon drawing')
  t.equal(a?.['7']?.inputs?.text, 'blurry, text')
  t.same(a?.['8']?.inputs?.samples, ['3', 0], 'links are untouched')
  t.match(a?.['9']?.inputs?.filename_prefix, new RegExp(`^runstore/${RUN_ID}_[0-9a-f]{8}$`))
  t.not(a?.['9']?.inputs?.filename_prefix, b?.['9']?.inputs?.filename_prefix)
  t.not(first.items[0]?.source.original_filename, second.items[0]?.source.original_filename)
  t.not(first.items[0]?.bytes.toString('hex'), second.items[0]?.bytes.toString('hex'))
  const cached = fake.events.filter((e) => e.type === 'execution_cached').map((e) => e.data.nodes)
  t.same(cached, [[], []], 'the second identical request was not answered from the cache')
  t.not(fake.prompts[0]?.client_id, fake.prompts[1]?.client_id)
  t.ok(fake.requests.every((r) => r.headers.origin === undefined), 'no Origin header, on HTTP or WebSocket')
  t.ok(fake.requests.some((r) => r.url.startsWith('/ws?clientId=')), 'listened on the WebSocket')
  t.equal(sd35.params.workflow['6']?.inputs?.text, '{{prompt}}', 'the config itself is not modified')

  const missingNegative = fillWorkflow(sd35.params.workflow, {
    prompt: 'p', negative_prompt: '', seed: 1, width: 2, height: 3, filename_prefix: 'x/y'
  })
  t.equal(missingNegative['7']?.inputs?.text, '')
})

t.test('workflows that are not API-format are refused before anything is sent', async (t) => {
  const { fake, backend } = await setup(t)
  const ui = { last_node_id: 9, last_link_id: 9, nodes: [{ id: 3, type: 'KSampler' }], links: [[1, 4, 0, 3, 0, 'MODEL']], version: 0.4 }
  const cases: Array<[string, unknown, RegExp]> = [
    ['UI format', ui, /UI-format workflow/],
    ['no workflow', undefined, /API-format workflow object/],
    ['a list', [], /API-format workflow object/],
    ['no nodes', {}, /no nodes/],
    ['a node without class_type', { 1: { inputs: {} } }, /node 1 has no class_type/],
    ['inputs that are not an object', { 1: { class_type: 'SaveImage', inputs: 'x' } }, /node 1 has inputs/],
    ['an unknown placeholder', imageWorkflow((g) => { (g['6'] as { inputs: Record<string, unknown> }).inputs.text = '{{promt}}' }), /unknown placeholder \{\{promt\}\}/]
  ]
  for (const [name, workflow, message] of cases) {
    const { items, error } = await collect(backend.generate(request(workflow as ComfyuiWorkflow)))
    t.equal(items.length, 0, name)
    t.equal(error?.code, 'INVALID_WORKFLOW', name)
    t.match(error?.message, message, name)
  }
  t.equal(fake.prompts.length, 0)
})

t.test('a dropped WebSocket falls back to polling', async (t) => {
  const { fake, backend } = await setup(t, { dropSocketsAfter: 'execution_start', runMs: 150 })
  const { items, error } = await collect(backend.generate(request(sd35.params.workflow)))
  t.equal(error, null)
  t.equal(items.length, 1)
  t.same(items[0]?.bytes, storedBytes(fake, items[0]!.source))
  t.ok(fake.requests.filter((r) => r.url.startsWith('/history/')).length > 1, 'kept asking /history')
})

t.test('no WebSocket at all (404 on /ws) still completes', async (t) => {
  const { fake, backend } = await setup(t, { webSocket: false })
  const { items, error } = await collect(backend.generate(request(sd35.params.workflow)))
  t.equal(error, null)
  t.equal(items.length, 1)
  t.ok(fake.requests.some((r) => r.url.startsWith('/ws')), 'it tried')
})

t.test('useWebSocket: false only polls', async (t) => {
  const { fake, backend } = await setup(t, {}, { useWebSocket: false })
  const { items, error } = await collect(backend.generate(request(sd35.params.workflow)))
  t.equal(error, null)
  t.equal(items.length, 1)
  t.notOk(fake.requests.some((r) => r.url.startsWith('/ws')))
})

t.test('the race: execution_success comes before the history, and only `executing null` ends the wait', async (t) => {
  // Polling is too slow to matter here: the WebSocket's executing/null must end the wait,
  // and the history must be read after it, not at execution_success.
  const { fake, backend } = await setup(t, { historyDelayMs: 250 }, { pollIntervalMs: 60_000, timeouts: { request: 2000, overall: 5000 } })
  const { items, error } = await collect(backend.generate(request(sd35.params.workflow)))
  t.equal(error, null)
  t.equal(items.length, 1)
  t.same(items[0]?.bytes, storedBytes(fake, items[0]!.source))
  const types = fake.events.map((e) => e.type)
  t.ok(types.indexOf('execution_success') < types.lastIndexOf('executing'))
})

t.test('outputs dropped by validation in a 200 are a failure naming the nodes; the rest is cancelled', async (t) => {
  const { fake, backend } = await setup(t, {
    runMs: 2000,
    validationErrors: { 12: { type: 'value_not_in_list', message: 'Value not in list', details: "ckpt_name: 'missing.safetensors' not in []" } }
  })
  const workflow = imageWorkflow((graph) => {
    graph['12'] = { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'missing.safetensors' } }
    graph['13'] = { class_type: 'VAEDecode', inputs: { samples: ['3', 0], vae: ['12', 2] } }
    graph['14'] = { class_type: 'SaveImage', inputs: { filename_prefix: 'x', images: ['13', 0] } }
  })
  const { items, error } = await collect(backend.generate(request(workflow)))
  t.equal(items.length, 0)
  t.equal(error?.code, 'BACKEND_FAILED')
  t.match(error?.message, /dropped outputs that failed validation: node 12 \(CheckpointLoaderSimple\): Value not in list: ckpt_name: 'missing.safetensors' not in \[\] \(drops output node 14\)/)
  t.equal(fake.prompts[0]?.status, 200)
  const cancels = fake.requests.filter((r) => r.url === '/queue' && r.method === 'POST').length +
    fake.requests.filter((r) => r.url === '/interrupt').length
  t.ok(cancels >= 1, 'asked ComfyUI to drop the prompt')
  const queue = await (await fetch(`${fake.url}/queue`)).json() as { queue_running: unknown[], queue_pending: unknown[] }
  t.same(queue.queue_pending, [])
})

t.test('an old server: node_errors [] means none, and its own prompt_id is used', async (t) => {
  const { fake, backend } = await setup(t, { legacyServer: true })
  const { items, error } = await collect(backend.generate(request(sd35.params.workflow)))
  t.equal(error, null)
  t.equal(items.length, 1)
  const sent = fake.prompts[0]?.prompt_id
  const used = items[0]?.source.prompt_id
  t.ok(sent && used && sent !== used, 'the server chose another id, and the client followed it')
})

t.test('a 400 prompt_outputs_failed_validation is a readable failure with node ids', async (t) => {
  const { fake, backend } = await setup(t, {
    validationErrors: { 4: { type: 'value_not_in_list', message: 'Value not in list', details: "ckpt_name: 'sd3.5_large_fp8_scaled.safetensors' not in ['v1-5.safetensors']" } }
  })
  const { items, error } = await collect(backend.generate(request(sd35.params.workflow)))
  t.equal(items.length, 0)
  t.equal(error?.code, 'BACKEND_FAILED')
  t.equal(error?.message, "backend comfyui failed: ComfyUI rejected the workflow: prompt_outputs_failed_validation: Prompt outputs failed validation; node 4 (CheckpointLoaderSimple): Value not in list: ckpt_name: 'sd3.5_large_fp8_scaled.safetensors' not in ['v1-5.safetensors'] (drops output node 9)")
  t.equal(fake.prompts[0]?.status, 400)
})

t.test('a plain-text 500 from POST /prompt is a failure quoting the text', async (t) => {
  const { backend } = await setup(t, { promptServerError: true })
  const { error } = await collect(backend.generate(request(sd35.params.workflow)))
  t.equal(error?.code, 'BACKEND_FAILED')
  t.match(error?.message, /POST \/prompt answered 500: 500 Internal Server Error Server got itself in trouble/)
})

t.test('an execution_error yields the outputs made before it, then fails naming node and exception', async (t) => {
  const { fake, backend } = await setup(t, { failNode: { node: '12', exceptionMessage: 'Allocation on device\n', exceptionType: 'torch.OutOfMemoryError' } })
  const workflow = imageWorkflow((graph) => {
    graph['12'] = { class_type: 'VAEDecodeTiled', inputs: { samples: ['3', 0], vae: ['4', 2], tile_size: 512 } }
    graph['13'] = { class_type: 'SaveImage', inputs: { filename_prefix: 'tiled', images: ['12', 0] } }
  })
  const { items, error } = await collect(backend.generate(request(workflow)))
  t.equal(items.length, 1, 'the image saved before the failure')
  t.equal(items[0]?.source.node_id, '9')
  t.same(items[0]?.bytes, storedBytes(fake, items[0]!.source))
  t.equal(error?.code, 'BACKEND_FAILED')
  t.match(error?.message, /node 12 \(VAEDecodeTiled\) failed: torch\.OutOfMemoryError: Allocation on device$/)
})

t.test('an interrupted prompt yields what exists and says it was interrupted', async (t) => {
  const { fake, backend } = await setup(t, { runMs: 1200 })
  const workflow = imageWorkflow((graph) => {
    graph['13'] = { class_type: 'SaveImage', inputs: { filename_prefix: 'late', images: ['8', 0] } }
  })
  const generation = collect(backend.generate(request(workflow)))
  // Someone presses "cancel" in the ComfyUI web UI while node 9 is done and 13 waits.
  await new Promise<void>((resolve) => {
    const poll = setInterval(() => {
      if (fake.events.some((e) => e.type === 'executed' && e.data.node === '9')) {
        clearInterval(poll)
        resolve()
      }
    }, 5)
  })
  await fetch(`${fake.url}/interrupt`, { method: 'POST' })
  const { items, error } = await generation
  t.same(items.map((i) => i.source.node_id), ['9'])
  t.match(error?.message, /execution was interrupted at node 13 \(SaveImage\)/)
})

t.test('a prompt that leaves the queue without history is lost', async (t) => {
  const { backend } = await setup(t, { losePrompts: true, runMs: 100 })
  const { items, error } = await collect(backend.generate(request(sd35.params.workflow)))
  t.equal(items.length, 0)
  t.equal(error?.code, 'BACKEND_FAILED')
  t.match(error?.message, /left the queue without a history entry/)
})

t.test('the overall timeout gives BACKEND_TIMEOUT and interrupts the prompt', async (t) => {
  const { fake, backend } = await setup(t, { runMs: 20_000 }, { timeouts: { request: 1000, overall: 200 } })
  const { items, error } = await collect(backend.generate(request(sd35.params.workflow)))
  t.equal(items.length, 0)
  t.equal(error?.code, 'BACKEND_TIMEOUT')
  t.match(error?.message, /did not finish within 200 ms/)
  t.ok(fake.requests.some((r) => r.url === '/interrupt'), 'interrupted the running prompt')
})

t.test('an aborted request stops waiting and drops the prompt', async (t) => {
  const { fake, backend } = await setup(t, { runMs: 20_000 })
  const controller = new AbortController()
  const reason = new Error('the workshop closed the tab')
  setTimeout(() => controller.abort(reason), 100)
  const { error } = await collect(backend.generate(request(sd35.params.workflow, { signal: controller.signal })))
  t.equal(error, reason)
  t.ok(fake.requests.some((r) => r.url === '/interrupt'))
})

t.test('a file that vanished (404 on /view) is skipped and named in the final error', async (t) => {
  const { fake, backend } = await setup(t, { vanish: (file) => file.filename.endsWith('_00002_.png') })
  const workflow = imageWorkflow((graph) => {
    (graph['5'] as { inputs: Record<string, unknown> }).inputs.batch_size = 3
  })
  const { items, error } = await collect(backend.generate(request(workflow)))
  t.same(items.map((i) => /_(\d{5})_\.png$/.exec(i.source.original_filename ?? '')?.[1]), ['00001', '00003'])
  t.equal(error?.code, 'BACKEND_FAILED')
  t.match(error?.message, /ComfyUI no longer has output\/runstore\/[^ ]+_00002_\.png$/)
  const views = fake.requests.filter((r) => r.url.startsWith('/view'))
  t.equal(views.length, 3)
})

t.test('a POST whose answer was lost is resent with the same prompt_id; the 409 means it is queued', async (t) => {
  const { fake, backend } = await setup(t, { cutPromptResponses: 1 })
  const { items, error } = await collect(backend.generate(request(sd35.params.workflow)))
  t.equal(error, null)
  t.equal(items.length, 1, 'the prompt ran once')
  t.same(fake.prompts.map((p) => p.status), [0, 409])
  t.equal(fake.prompts[0]?.prompt_id, fake.prompts[1]?.prompt_id)
  t.equal(fake.events.filter((e) => e.type === 'execution_start').length, 1)
})

t.test('client.submit: a duplicate id is "already submitted"; ids must be UUIDs and are sent in lowercase', async (t) => {
  const { fake, client } = await setup(t)
  const workflow = readApiWorkflow(sd35.params.workflow)
  const id = randomUUID()
  const first = await client.submit(workflow, { promptId: id.toUpperCase(), clientId: 'me' })
  t.same(first, { prompt_id: id, number: 0 })
  const again = await client.submit(workflow, { promptId: id, clientId: 'me' })
  t.same(again, { prompt_id: id, number: null })
  t.same(fake.prompts.map((p) => [p.status, p.prompt_id]), [[200, id], [409, id]])
  await t.rejects(client.submit(workflow, { promptId: 'job-1', clientId: 'me' }), /prompt_id must be a UUID/)
})

t.test('an unreachable ComfyUI fails after the retries', async (t) => {
  const port = await closedPort()
  const client = new ComfyuiClient({ baseUrl: `http://127.0.0.1:${port}`, submitRetries: 1, timeouts: { request: 500 } })
  await t.rejects(client.submit(readApiWorkflow(sd35.params.workflow), { promptId: randomUUID(), clientId: 'c' }), {
    code: 'BACKEND_FAILED', message: /POST \/prompt at http:\/\/127\.0\.0\.1:\d+\/: .*ECONNREFUSED/
  })
  await t.rejects(client.systemStats(), { code: 'BACKEND_FAILED' })
  t.throws(() => new ComfyuiClient({ baseUrl: 'ftp://comfy' }), /must be http\(s\)/)
})

t.test('an abort while waiting between polls ends the wait at once', async (t) => {
  const { client } = await setup(t, { runMs: 20_000 })
  const slowPolls = new ComfyuiClient({ baseUrl: client.baseUrl, pollIntervalMs: 60_000, useWebSocket: false })
  const { prompt_id: promptId } = await slowPolls.submit(readApiWorkflow(sd35.params.workflow), { promptId: randomUUID(), clientId: 'c' })
  const controller = new AbortController()
  const waiting = slowPolls.waitForCompletion(promptId, 'c', controller.signal)
  setTimeout(() => controller.abort(new Error('stop waiting')), 50)
  await t.rejects(waiting, /stop waiting/)
  await slowPolls.cancel(promptId)
})

t.test('a ComfyUI that goes away while we wait fails after the tolerated poll failures', async (t) => {
  const fake = await startFakeComfyui({ runMs: 20_000 })
  t.teardown(() => fake.close())
  const client = new ComfyuiClient({ baseUrl: fake.url, pollIntervalMs: 10, maxPollFailures: 3, timeouts: { request: 500, overall: 10_000 } })
  const { prompt_id: promptId } = await client.submit(readApiWorkflow(sd35.params.workflow), { promptId: randomUUID(), clientId: 'c' })
  const waiting = client.waitForCompletion(promptId, 'c')
  await fake.close()
  await t.rejects(waiting, { code: 'BACKEND_FAILED', message: /GET \/history\/.* ECONNREFUSED/ })
})

t.test('collectOutputs: prompts someone else submitted', async (t) => {
  const { fake, backend, client } = await setup(t, { runMs: 150 })
  const graph = fillWorkflow(readApiWorkflow(sd35.params.workflow), {
    prompt: 'a castle made of cake', negative_prompt: '', seed: 7, width: 512, height: 512, filename_prefix: 'webui/castle'
  })
  const submit = async (): Promise<string> => {
    const answer = await fetch(`${fake.url}/api/prompt`, { method: 'POST', body: JSON.stringify({ prompt: graph, client_id: 'the-web-ui' }) })
    return ((await answer.json()) as { prompt_id: string }).prompt_id
  }

  await t.test('still running: waits for it (by polling: its events go to the web UI)', async (t) => {
    const promptId = await submit()
    const { items, error } = await collect(backend.collect(promptId))
    t.equal(error, null)
    t.equal(items.length, 1)
    t.same(items[0]?.source, { kind: 'comfyui', prompt_id: promptId, node_id: '9', original_filename: 'castle_00001_.png', subfolder: 'webui', type: 'output' })
    t.same(items[0]?.bytes, fake.file('output', 'webui', 'castle_00001_.png'))
  })

  await t.test('finished before we asked: answered from the history', async (t) => {
    const promptId = await submit()
    await fake.finished(promptId)
    const entry = await client.collectOutputs(promptId)
    // The same graph again: ComfyUI answers from its cache with the first run's file.
    t.same(listOutputFiles(entry).map((f) => f.filename), ['castle_00001_.png'])
    const cached = fake.events.filter((e) => e.type === 'execution_cached').at(-1)?.data.nodes as string[]
    t.same([...cached].sort(), ['3', '4', '5', '6', '7', '8', '9'])
  })

  await t.test('aborted before the downloads: nothing is yielded', async (t) => {
    const promptId = await submit()
    await fake.finished(promptId)
    const controller = new AbortController()
    const reason = new Error('cancelled')
    controller.abort(reason)
    const { items, error } = await collect(backend.collect(promptId, controller.signal))
    t.equal(items.length, 0)
    t.equal(error, reason)
  })

  await t.test('unknown to ComfyUI: a clear error', async (t) => {
    const promptId = randomUUID()
    const { items, error } = await collect(backend.collect(promptId))
    t.equal(items.length, 0)
    t.equal(error?.code, 'COMFYUI_PROMPT_NOT_FOUND')
    t.equal((error as Error & { statusCode?: number }).statusCode, 404)
    t.match(error?.message, promptId)
  })
})

t.test('health via /system_stats; availability from COMFYUI_URL', async (t) => {
  const { fake, backend } = await setup(t)
  t.equal(backend.name, 'comfyui')
  t.equal(backend.unavailableReason(), null)
  t.same(await backend.health(), {
    ok: true,
    details: { comfyui_version: '0.3.64', devices: ['cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync'] }
  })

  const port = await closedPort()
  const down = new ComfyuiBackend({ baseUrl: `http://127.0.0.1:${port}`, timeouts: { request: 500 } })
  const health = await down.health()
  t.equal(health.ok, false)
  t.match(health.details, { error: /ECONNREFUSED/ })

  const wrongPath = new ComfyuiBackend({ baseUrl: `${fake.url}/comfy/` })
  t.same(await wrongPath.health(), { ok: false, details: { error: 'backend comfyui failed: GET /system_stats answered 404: 404: Not Found' } })

  const unset = new ComfyuiBackend({ baseUrl: undefined })
  t.equal(unset.unavailableReason(), 'COMFYUI_URL is not set')
  t.same(await unset.health(), { ok: false, details: { error: 'COMFYUI_URL is not set' } })
  const { error } = await collect(unset.generate(request(sd35.params.workflow)))
  t.equal(error?.code, 'BACKEND_UNAVAILABLE')
  const collected = await collect(unset.collect(randomUUID()))
  t.equal(collected.error?.code, 'BACKEND_UNAVAILABLE')
})

t.test('a base URL with a path prefix (ComfyUI behind a proxy at /api/) reaches every route', async (t) => {
  const { fake } = await setup(t)
  const backend = new ComfyuiBackend({ baseUrl: `${fake.url}/api`, pollIntervalMs: 25 })
  const { items, error } = await collect(backend.generate(request(sd35.params.workflow)))
  t.equal(error, null)
  t.equal(items.length, 1)
  t.ok(fake.requests.some((r) => r.url.startsWith('/api/ws?clientId=')))
  t.ok(fake.requests.some((r) => r.url.startsWith('/api/view?')))
})

t.test('download: errors other than 404 are failures', async (t) => {
  const { client } = await setup(t)
  await t.rejects(client.download({ filename: '../etc/passwd', subfolder: '', type: 'output' }), {
    code: 'BACKEND_FAILED', message: /GET \/view output\/\.\.\/etc\/passwd answered 400/
  })
  await t.rejects(client.download({ filename: 'gone.png', subfolder: 'x', type: 'temp' }), {
    code: 'COMFYUI_FILE_MISSING', message: 'ComfyUI no longer has the file temp/x/gone.png'
  })
  const port = await closedPort()
  const offline = new ComfyuiClient({ baseUrl: `http://127.0.0.1:${port}` })
  await t.rejects(offline.download({ filename: 'a.png', subfolder: '', type: 'output' }), { code: 'BACKEND_FAILED', message: /ECONNREFUSED/ })
  const controller = new AbortController()
  controller.abort(new Error('stop'))
  await t.rejects(offline.download({ filename: 'a.png', subfolder: '', type: 'output' }, controller.signal), /stop/)
})

t.test('listOutputFiles reads every file list and nothing else', async (t) => {
  const entry: ComfyuiHistoryEntry = {
    outputs: {
      12: { audio: [{ filename: 'ComfyUI_00001_.flac', subfolder: 'audio', type: 'output' }] },
      9: {
        images: [
          { filename: 'run1_00001_.png', subfolder: 'svc', type: 'output' },
          { filename: 'run1_00002_.png', subfolder: 'svc', type: 'output' },
          // a node that ran twice has its lists concatenated
          { filename: 'run1_00003_.png', subfolder: 'svc', type: 'output' }
        ]
      },
      15: { images: [{ filename: 'ComfyUI_00001_.mp4', subfolder: 'video', type: 'output' }], animated: [true] },
      20: { gifs: [{ filename: 'AnimateDiff_00001.mp4', subfolder: '', type: 'output', format: 'video/h264-mp4', frame_rate: 8.0, fullpath: '/srv/x' }] },
      21: { text: ['a caption'], latents: [{ filename: 'x.latent', subfolder: 'latents', type: 'output' }] },
      22: { images: [{ filename: 'in.png', subfolder: '', type: 'input' }, { filename: '' }, null, 'x', { filename: 'nosub.png' }] },
      23: { unfinished_batch: [true] },
      '30:2': { '3d': [{ filename: 'mesh_00001_.glb', subfolder: 'mesh', type: 'output' }] },
      24: 'not an object' as unknown as Record<string, unknown>
    }
  }
  t.same(listOutputFiles(entry).map((f) => [f.node_id, f.key, f.type, f.subfolder, f.filename]), [
    ['9', 'images', 'output', 'svc', 'run1_00001_.png'],
    ['9', 'images', 'output', 'svc', 'run1_00002_.png'],
    ['9', 'images', 'output', 'svc', 'run1_00003_.png'],
    ['12', 'audio', 'output', 'audio', 'ComfyUI_00001_.flac'],
    ['15', 'images', 'output', 'video', 'ComfyUI_00001_.mp4'],
    ['20', 'gifs', 'output', '', 'AnimateDiff_00001.mp4'],
    ['22', 'images', 'output', '', 'nosub.png'],
    ['30:2', '3d', 'output', 'mesh', 'mesh_00001_.glb']
  ])
})

t.test('describeExecutionFailure', async (t) => {
  const entry = (status: ComfyuiHistoryEntry['status']): ComfyuiHistoryEntry => ({ outputs: {}, ...(status ? { status } : {}) })
  t.equal(describeExecutionFailure(entry(undefined)), null, 'very old servers have no status')
  t.equal(describeExecutionFailure(entry({ status_str: 'success', completed: true, messages: [] })), null)
  t.equal(describeExecutionFailure(entry({ status_str: 'error', completed: false })), 'ComfyUI reported an error without details')
  t.equal(describeExecutionFailure(entry({
    status_str: 'error',
    messages: [['execution_start', {}], ['execution_error', { node_id: '5', exception_message: '' }]]
  })), 'node 5 failed: no exception message')
})

async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}
