import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { startFakeComfyui, type FakeComfyui, type Graph } from './comfyui.js'

// The fake ComfyUI must behave like the real one, or the backend tests prove
// nothing: these pin the protocol corners the client depends on.

const workflow = JSON.parse(readFileSync(new URL('../../configs/outputs/sd35_large.json', import.meta.url), 'utf8')).params.workflow as Graph
const graph: Graph = JSON.parse(JSON.stringify(workflow)
  .replace('"{{seed}}"', '42').replace('"{{width}}"', '64').replace('"{{height}}"', '64')
  .replace('{{prompt}}', 'a cat').replace('{{negative_prompt}}', '').replace('{{filename_prefix}}', 'test/cat'))

async function start (t: Test, options: Parameters<typeof startFakeComfyui>[0] = {}): Promise<FakeComfyui> {
  const fake = await startFakeComfyui(options)
  t.teardown(() => fake.close())
  return fake
}

async function post (fake: FakeComfyui, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return await fetch(fake.url + path, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), headers })
}

interface Message { type: string, data: Record<string, unknown> }

// Resolves with the status code of a refused WebSocket handshake.
async function refusedStatus (url: string, options: WebSocket.ClientOptions = {}): Promise<number | undefined> {
  const socket = new WebSocket(url, options)
  socket.on('error', () => {})
  const status = await new Promise<number | undefined>((resolve) => socket.once('unexpected-response', (_req, res) => resolve(res.statusCode)))
  socket.terminate()
  return status
}

async function listen (fake: FakeComfyui, clientId: string, onMessage: (m: Message) => void = () => {}): Promise<{ messages: Message[], binary: Buffer[], socket: WebSocket }> {
  const messages: Message[] = []
  const binary: Buffer[] = []
  const socket = new WebSocket(`${fake.url.replace('http', 'ws')}/ws?clientId=${clientId}`)
  socket.on('message', (data: Buffer, isBinary) => {
    if (isBinary) return binary.push(data)
    const message = JSON.parse(data.toString()) as Message
    messages.push(message)
    onMessage(message)
  })
  await new Promise((resolve, reject) => { socket.once('open', resolve); socket.once('error', reject) })
  return { messages, binary, socket }
}

t.test('routes answer at /X and /api/X; a foreign Origin gets 403', async (t) => {
  const fake = await start(t)
  for (const prefix of ['', '/api']) {
    const stats = await fetch(`${fake.url}${prefix}/system_stats`)
    t.equal(stats.status, 200)
    t.match(await stats.json(), { system: { comfyui_version: String }, devices: Array })
    t.same(await (await fetch(`${fake.url}${prefix}/queue`)).json(), { queue_running: [], queue_pending: [] })
    t.same(await (await fetch(`${fake.url}${prefix}/prompt`)).json(), { exec_info: { queue_remaining: 0 } })
  }
  t.equal((await fetch(`${fake.url}/nothing`)).status, 404)
  t.equal((await fetch(`${fake.url}/ws`)).status, 400, 'a plain GET on /ws')

  const host = new URL(fake.url).host
  t.equal((await post(fake, '/prompt', { prompt: graph }, { Origin: 'http://evil.example' })).status, 403)
  t.equal((await post(fake, '/prompt', { prompt: graph }, { Origin: 'not a url' })).status, 403)
  t.equal((await post(fake, '/prompt', { prompt: graph }, { Origin: `http://${host}` })).status, 200, 'same origin is fine')
  t.equal(await refusedStatus(`${fake.url.replace('http', 'ws')}/ws?clientId=x`, { origin: 'http://evil.example' }), 403)
  t.equal(await refusedStatus(`${fake.url.replace('http', 'ws')}/elsewhere`), 404)
})

t.test('POST /prompt validates like ComfyUI', async (t) => {
  const fake = await start(t)
  const invalidJson = await post(fake, '/prompt', '{"prompt": ')
  t.equal(invalidJson.status, 500)
  t.match(invalidJson.headers.get('content-type'), /^text\/plain/)
  t.match(await invalidJson.text(), /500 Internal Server Error/)

  const noPrompt = await post(fake, '/prompt', { client_id: 'x' })
  t.equal(noPrompt.status, 400)
  t.match(await noPrompt.json(), { error: { type: 'no_prompt', message: 'No prompt provided' }, node_errors: {} })

  const ui = await post(fake, '/prompt', { prompt: { last_node_id: 9, nodes: [{ id: 1 }], links: [] } })
  t.equal(ui.status, 400)
  t.match(await ui.json(), { error: { type: 'invalid_prompt', details: "Node ID '#last_node_id'" }, node_errors: [] })

  const noOutputs = await post(fake, '/prompt', { prompt: { 1: { class_type: 'CheckpointLoaderSimple', inputs: {} } } })
  t.match(await noOutputs.json(), { error: { type: 'prompt_no_outputs' } })

  const badId = await post(fake, '/prompt', { prompt: graph, prompt_id: 'ABC' })
  t.equal(badId.status, 400)
  t.match(await badId.json(), { error: { type: 'invalid_prompt_id' } })

  const id = randomUUID()
  const first = await post(fake, '/prompt', { prompt: graph, prompt_id: id, client_id: 'me' })
  t.same(await first.json(), { prompt_id: id, number: 0, node_errors: {} })
  const duplicate = await post(fake, '/prompt', { prompt: graph, prompt_id: id })
  t.equal(duplicate.status, 409)
  t.same(await duplicate.json(), { error: 'prompt_id already exists' })
  await fake.finished(id)
  t.equal((await post(fake, '/prompt', { prompt: graph, prompt_id: id })).status, 409, 'also once it is in the history')
  t.same(fake.prompts.map((p) => p.status), [400, 400, 400, 400, 200, 409, 409], 'invalid JSON is not recorded')
})

t.test('/history is {} while queued, running and unknown; /queue tells them apart', async (t) => {
  const fake = await start(t, { runMs: 300 })
  const [a, b] = [randomUUID(), randomUUID()]
  await post(fake, '/prompt', { prompt: graph, prompt_id: a })
  await post(fake, '/prompt', { prompt: { ...graph, 9: { class_type: 'SaveImage', inputs: { filename_prefix: 'other', images: ['8', 0] } } }, prompt_id: b })
  for (const id of [a, b, randomUUID()]) {
    const answer = await fetch(`${fake.url}/history/${id}`)
    t.equal(answer.status, 200)
    t.same(await answer.json(), {})
  }
  const queue = await (await fetch(`${fake.url}/queue`)).json() as { queue_running: unknown[][], queue_pending: unknown[][] }
  t.same(queue.queue_running.map((item) => item[1]), [a])
  t.same(queue.queue_pending.map((item) => item[1]), [b])
  t.same(queue.queue_running[0]?.[4], ['9'], 'outputs to execute')

  await post(fake, '/queue', { delete: [b] })
  t.same((await (await fetch(`${fake.url}/queue`)).json() as { queue_pending: unknown[] }).queue_pending, [])
  await fake.finished(a)
  const entry = (await (await fetch(`${fake.url}/history/${a}`)).json() as Record<string, { prompt: unknown[], status: unknown, outputs: unknown }>)[a]
  t.same(entry?.prompt.slice(0, 2), [0, a])
  t.match(entry?.status, { status_str: 'success', completed: true, messages: [['execution_start', { prompt_id: a }], ['execution_cached', { nodes: [] }], ['execution_success', {}]] })
  t.same(entry?.outputs, { 9: { images: [{ filename: 'cat_00001_.png', subfolder: 'test', type: 'output' }] } })

  t.same(Object.keys(await (await fetch(`${fake.url}/history?max_items=5`)).json() as object), [a])
  await post(fake, '/history', { delete: [a] })
  t.same(await (await fetch(`${fake.url}/history/${a}`)).json(), {})
  await post(fake, '/history', { clear: true })
  await post(fake, '/queue', { clear: true })
})

t.test('WebSocket: events in the real order, execution_success before the history, progress only to the submitter', async (t) => {
  const fake = await start(t, { historyDelayMs: 100 })
  const id = randomUUID()
  const historyAt: Record<string, unknown> = {}
  const pending: Array<Promise<void>> = []
  const mine = await listen(fake, 'me', (message) => {
    if (message.type === 'execution_success' || (message.type === 'executing' && message.data.node === null)) {
      pending.push(fetch(`${fake.url}/history/${id}`).then(async (r) => { historyAt[message.type] = await r.json() }))
    }
  })
  const other = await listen(fake, 'someone-else')
  await post(fake, '/prompt', { prompt: graph, prompt_id: id, client_id: 'me' })
  await fake.finished(id)
  await new Promise((resolve) => setTimeout(resolve, 50))
  await Promise.all(pending)

  const types = mine.messages.map((m) => m.type)
  t.same(types[0], 'status', 'the greeting')
  t.match(mine.messages[0]?.data, { sid: 'me' })
  const begin = types.indexOf('execution_start')
  t.same(types.slice(begin, begin + 3), ['execution_start', 'execution_cached', 'executing'])
  t.ok(types.includes('progress'))
  t.ok(types.indexOf('executed') < types.indexOf('execution_success'))
  const last = mine.messages.filter((m) => m.type !== 'status').at(-1)
  t.same(last, { type: 'executing', data: { node: null, prompt_id: id } }, 'executing/null comes last')
  t.same(historyAt.execution_success, {}, 'no history yet at execution_success')
  t.ok(Object.hasOwn(historyAt.executing as object, id), 'history written before executing/null')
  t.match(mine.messages.find((m) => m.type === 'executed')?.data, { node: '9', output: { images: [{ filename: 'cat_00001_.png' }] }, prompt_id: id })
  t.ok(mine.binary.length > 0 && mine.binary[0]?.readUInt32BE(0) === 1, 'binary preview frames, event type 1')

  t.same([...new Set(other.messages.map((m) => m.type))], ['status'], 'another client sees only status broadcasts')
  t.equal(other.binary.length, 0)
  mine.socket.close()
  other.socket.close()
})

t.test('a prompt without client_id broadcasts its events; a reconnecting submitter hears the current node', async (t) => {
  const fake = await start(t, { runMs: 300 })
  const watcher = await listen(fake, 'watcher')
  const id = randomUUID()
  await post(fake, '/prompt', { prompt: graph, prompt_id: id })
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.ok(watcher.messages.some((m) => m.type === 'execution_start'), 'no client_id: sent to everyone')
  const submitter = randomUUID()
  const id2 = randomUUID()
  await post(fake, '/prompt', { prompt: { ...graph, 9: { class_type: 'SaveImage', inputs: { filename_prefix: 'x', images: ['8', 0] } } }, prompt_id: id2, client_id: submitter })
  await fake.finished(id)
  await new Promise((resolve) => setTimeout(resolve, 100))
  const late = await listen(fake, submitter)
  t.match(late.messages[1], { type: 'executing', data: { prompt_id: id2, node: String } })
  await fake.finished(id2)
  watcher.socket.close()
  late.socket.close()
})

t.test('behaviours: no WebSocket, dropped sockets, lost prompts, garbage answers', async (t) => {
  const noSocket = await start(t, { webSocket: false })
  t.equal(await refusedStatus(`${noSocket.url.replace('http', 'ws')}/api/ws?clientId=x`), 404)

  const dropping = await start(t, { dropSocketsAfter: 'execution_start' })
  const { socket } = await listen(dropping, 'c')
  const closed = new Promise((resolve) => socket.once('close', resolve))
  await post(dropping, '/prompt', { prompt: graph, client_id: 'c' })
  await closed
  t.pass('the socket was closed mid-run')

  const losing = await start(t, { losePrompts: true, runMs: 40 })
  const id = randomUUID()
  await post(losing, '/prompt', { prompt: graph, prompt_id: id })
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.same(await (await fetch(`${losing.url}/history/${id}`)).json(), {})
  t.same(await (await fetch(`${losing.url}/queue`)).json(), { queue_running: [], queue_pending: [] })

  const html = await start(t, { garbage: 'html' })
  const page = await post(html, '/prompt', { prompt: graph, prompt_id: randomUUID() })
  t.equal(page.status, 200)
  t.match(await page.text(), /^<html>/, 'an HTML page where JSON belongs')
  t.match(await (await fetch(`${html.url}/history`)).text(), /^<html>/)
  t.same(html.events, [], 'nothing was queued')

  const wrong = await start(t, { garbage: 'wrong_json' })
  t.same(await (await post(wrong, '/prompt', { prompt: graph, prompt_id: randomUUID() })).json(), { queued: true }, 'no prompt_id')
  t.same(Object.keys(await (await fetch(`${wrong.url}/history/${randomUUID()}`)).json()), ['someone-else'])
  t.same(await (await fetch(`${wrong.url}/queue`)).json(), { queue_running: {}, queue_pending: 'none' })
  t.same(wrong.events, [], 'nothing was queued')
})

t.test('/view: errors, Range, preview, lying Content-Type', async (t) => {
  const fake = await start(t, { contentTypes: { '.png': 'text/plain' } })
  const id = randomUUID()
  await post(fake, '/prompt', { prompt: graph, prompt_id: id })
  await fake.finished(id)
  const bytes = fake.file('output', 'test', 'cat_00001_.png') as Buffer
  const view = async (query: string, headers: Record<string, string> = {}): Promise<Response> => await fetch(`${fake.url}/api/view?${query}`, { headers })

  const ok = await view('filename=cat_00001_.png&subfolder=test&type=output')
  t.equal(ok.status, 200)
  t.equal(ok.headers.get('content-type'), 'text/plain', 'the host guessed wrong')
  t.equal(ok.headers.get('content-disposition'), 'filename="cat_00001_.png"')
  t.ok(ok.headers.get('etag') && ok.headers.get('last-modified'))
  t.same(Buffer.from(await ok.arrayBuffer()), bytes)

  const range = await view('filename=cat_00001_.png&subfolder=test', { Range: 'bytes=0-7' })
  t.equal(range.status, 206)
  t.equal(range.headers.get('content-range'), `bytes 0-7/${bytes.length}`)
  t.same(Buffer.from(await range.arrayBuffer()), bytes.subarray(0, 8))
  const suffix = await view('filename=cat_00001_.png&subfolder=test', { Range: 'bytes=-4' })
  t.same(Buffer.from(await suffix.arrayBuffer()), bytes.subarray(-4))
  t.equal((await view('filename=cat_00001_.png&subfolder=test', { Range: `bytes=${bytes.length}-` })).status, 416)

  const preview = await view('filename=cat_00001_.png&subfolder=test&preview=webp;90')
  t.equal(preview.headers.get('content-type'), 'image/webp')
  t.notSame(Buffer.from(await preview.arrayBuffer()), bytes, 'a preview is not the original')

  const cases: Array<[string, number]> = [
    ['subfolder=test', 404],
    ['filename=', 500],
    ['filename=../secret.png', 400],
    ['filename=%2Fetc%2Fpasswd', 400],
    ['filename=cat_00001_.png&subfolder=test&type=models', 400],
    ['filename=cat_00001_.png&subfolder=..%2F..%2Fetc', 403],
    ['filename=cat_00001_.png&subfolder=%2Fetc', 403],
    ['filename=cat_00001_.png&subfolder=test&type=temp', 404],
    ['filename=cat_00001_.png', 404]
  ]
  for (const [query, status] of cases) {
    const answer = await view(query)
    t.equal(answer.status, status, query)
    if (status === 404) t.equal(await answer.text(), '', `${query}: empty body`)
  }
  t.equal((await view('filename=cat_00001_.png&subfolder=test%2F..%2Ftest')).status, 200, 'a subfolder that stays inside is fine')
})

t.test('POST /interrupt only stops the named prompt', async (t) => {
  const fake = await start(t, { runMs: 300 })
  const id = randomUUID()
  await post(fake, '/prompt', { prompt: graph, prompt_id: id })
  await post(fake, '/interrupt', { prompt_id: randomUUID() })
  await fake.finished(id)
  const entry = (await (await fetch(`${fake.url}/history/${id}`)).json() as Record<string, { status: { status_str: string } }>)[id]
  t.equal(entry?.status.status_str, 'success')
})

t.test('a cut POST /prompt response still queued the prompt', async (t) => {
  const fake = await start(t, { cutPromptResponses: 1 })
  const id = randomUUID()
  const error = await new Promise<Error>((resolve) => {
    const req = httpRequest(`${fake.url}/prompt`, { method: 'POST' }, () => resolve(new Error('answered')))
    req.on('error', resolve)
    req.end(JSON.stringify({ prompt: graph, prompt_id: id }))
  })
  t.match(error.message, /socket hang up|ECONNRESET/)
  await fake.finished(id)
  t.equal((await post(fake, '/prompt', { prompt: graph, prompt_id: id })).status, 409)
})

t.test('maxQueued: the most prompts held at once, queued and running together, not the running count', async (t) => {
  const fake = await start(t, { runMs: 200, historyDelayMs: 0 })
  // each its own graph, or ComfyUI's cache answers the repeats without running them
  let n = 0
  const send = async (id: string): Promise<Response> => await post(fake, '/prompt', { prompt: JSON.parse(JSON.stringify(graph).replace('test/cat', `test/cat${++n}`)), prompt_id: id })
  t.equal(fake.maxQueued, 0, 'nothing sent yet')
  const one = randomUUID()
  await send(one)
  await fake.finished(one)
  const two = randomUUID()
  await send(two)
  await fake.finished(two)
  t.equal(fake.maxQueued, 1, 'one after the other never held two')
  const ids = [randomUUID(), randomUUID(), randomUUID()]
  await Promise.all(ids.map(send))
  await Promise.all(ids.map(async (id) => { await fake.finished(id) }))
  t.equal(fake.maxQueued, 3, 'three sent at once: one running, two waiting')
})
