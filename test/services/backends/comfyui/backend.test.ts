import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import t from 'tap'
import { ComfyuiBackend } from '../../../../services/backends/comfyui/backend.js'
import { fillWorkflow, listOutputFiles, readApiWorkflow, type ComfyuiWorkflow } from '../../../../services/backends/comfyui/protocol.js'
import type { Graph } from '../../../fakes/comfyui.js'
import { fixtures } from '../../../fixtures/media.js'
import {
  closedPort, collect, fileType, imageWorkflow, lastPrompt, outputWorkflow, PNG_SIGNATURE, request, RUN_ID, sd35, setup, stableAudio, storedBytes
} from './setup.js'

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
  const { fake, backend } = await setup(t, { holdNode: '13' })
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

t.test('validateParams: the shipped workflows pass, broken ones fail saying why, with or without COMFYUI_URL', async (t) => {
  const unset = new ComfyuiBackend({ baseUrl: undefined })
  t.doesNotThrow(() => unset.validateParams(sd35.params))
  t.doesNotThrow(() => unset.validateParams(stableAudio.params))
  t.throws(() => unset.validateParams({}), /params\.workflow must be an API-format workflow object/)
  t.throws(() => unset.validateParams({ workflow: sd35.params.workflow, steps: 20 }), /params\.steps is not a parameter of the comfyui backend \(it takes workflow\)/)
  t.throws(() => unset.validateParams({ workflow: 'sd35.json' }), /params\.workflow must be an object \(got "sd35\.json"\)/)
  t.throws(() => unset.validateParams({ workflow: { nodes: [], links: [] } }), { code: 'INVALID_WORKFLOW', message: /UI-format workflow/ })
  const missingNode = imageWorkflow((g) => { delete g['4'] })
  t.throws(() => unset.validateParams({ workflow: missingNode }), { code: 'INVALID_WORKFLOW', message: /node 3 \(KSampler\) input model takes the output of node 4, which is not in the workflow/ })
  const { fake } = await setup(t)
  t.doesNotThrow(() => new ComfyuiBackend({ baseUrl: fake.url }).validateParams(sd35.params))
  t.equal(fake.requests.length, 0, 'checking asks ComfyUI nothing')
})
