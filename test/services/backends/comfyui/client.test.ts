import { randomUUID } from 'node:crypto'
import t from 'tap'
import { ComfyuiClient } from '../../../../services/backends/comfyui/client.js'
import { readApiWorkflow } from '../../../../services/backends/comfyui/protocol.js'
import { startFakeComfyui } from '../../../fakes/comfyui.js'
import { closedPort, collect, imageWorkflow, request, sd35, setup, storedBytes } from './setup.js'

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

t.test('with room: a prompt waits until ComfyUI holds fewer than that many, such as one an instance that died had submitted', async (t) => {
  for (const room of [undefined, 1]) {
    const { fake, backend, client } = await setup(t, { runMs: 300 }, room === undefined ? {} : { room })
    // Submitted by someone else (a dead instance, the web UI): this backend's own slots know nothing of it.
    const foreign = await client.submit(readApiWorkflow(sd35.params.workflow), { promptId: randomUUID(), clientId: randomUUID() })
    const { items, error } = await collect(backend.generate(request(sd35.params.workflow)))
    t.equal(error, null)
    t.equal(items.length, 1)
    await fake.finished(foreign.prompt_id)
    t.equal(fake.maxQueued, room ?? 2, room === undefined ? 'without room: handed over beside it' : 'with room 1: never two at once')
  }
})

t.test('waitForRoom gives up at the overall timeout, and when /queue cannot be read', async (t) => {
  const { fake, client } = await setup(t, { runMs: 20_000 }, { timeouts: { request: 1000, overall: 200 } })
  await client.submit(readApiWorkflow(sd35.params.workflow), { promptId: randomUUID(), clientId: randomUUID() })
  const started = Date.now()
  await client.waitForRoom(1)
  t.ok(Date.now() - started >= 150, 'it waited for the timeout before giving up')
  fake.setBehaviour({ garbage: 'html' })
  await t.resolves(client.waitForRoom(1), 'an unreadable /queue ends the wait')
  const controller = new AbortController()
  controller.abort(new Error('closed'))
  await t.rejects(client.waitForRoom(1, controller.signal), /closed/, 'an aborted request does not wait')
})
