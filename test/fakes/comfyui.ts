import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { posix } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { PNG } from 'pngjs'
import { WebSocketServer, type WebSocket } from 'ws'
import { fixtures } from '../fixtures/media.js'

// A ComfyUI stand-in that speaks the real protocol (server.py, execution.py,
// main.py's prompt worker) including its awkward corners: {} from /history
// while a prompt waits, execution_success before the history exists, events
// only for the submitting client, node_errors in a 200, lying Content-Types.

export type Graph = Record<string, { class_type?: unknown, inputs?: Record<string, unknown>, [key: string]: unknown }>

export interface FakeFileInfo {
  node_id: string
  class_type: string
  type: 'output' | 'temp'
  subfolder: string
  filename: string
}

export interface ValidationFailure {
  type?: string
  message: string
  details?: string
}

export interface FakeComfyuiBehaviour {
  /** how long a prompt runs from execution_start to execution_success */
  runMs: number
  /** a node that runs until the prompt is interrupted */
  holdNode?: string
  /** the gap between execution_success and the history being written (the race) */
  historyDelayMs: number
  /** every HTTP answer waits this long first: a server busy loading a model */
  answerDelayMs: number
  /** false: /ws answers 404, as behind proxies that don't pass WebSockets */
  webSocket: boolean
  /** close every socket right after sending this event type */
  dropSocketsAfter: string | null
  /** this node raises an exception when it runs; output nodes that ran before keep their outputs */
  failNode: { node: string, exceptionMessage?: string, exceptionType?: string } | null
  /** nodes that fail validation: outputs depending on them are dropped (200 with node_errors), or 400 when none is left */
  validationErrors: Record<string, ValidationFailure>
  /** old servers: node_errors is [] when there are none, and our prompt_id is ignored */
  legacyServer: boolean
  /** prompts leave the queue halfway through without any history (deleted, or a restart) */
  losePrompts: boolean
  /** the next N POST /prompt are queued, then the connection is cut before the answer */
  cutPromptResponses: number
  /** POST /prompt answers a plain-text 500, as when a custom node's prompt handler raises */
  promptServerError: boolean
  /** files listed in the history whose bytes are gone (a temp folder wiped by a restart) */
  vanish: ((file: FakeFileInfo) => boolean) | null
  /** extension (".flac") → Content-Type /view sends, replacing the host's guess */
  contentTypes: Record<string, string>
  /** GET /view of these files sends its headers and half the body, then the connection drops (a restart mid-download) */
  cutDownloads: ((filename: string) => boolean) | null
  /**
   * /prompt, /history and /queue answer 200 with something else than their JSON, and nothing is queued:
   * an HTML page (a proxy's, or another service on the port), or JSON of the wrong shape
   */
  garbage: 'html' | 'wrong_json' | null
}

export interface ReceivedPrompt {
  /** HTTP status the fake answered with (0 when it cut the connection) */
  status: number
  body: Record<string, unknown>
  prompt_id: string | undefined
  client_id: string | undefined
  prompt: Graph | undefined
}

export interface ReceivedRequest {
  method: string
  url: string
  headers: IncomingMessage['headers']
}

export interface SentEvent {
  type: string
  data: Record<string, unknown>
  /** clientId it was sent to; null = broadcast */
  to: string | null
}

export interface FakeComfyui {
  url: string
  prompts: ReceivedPrompt[]
  requests: ReceivedRequest[]
  events: SentEvent[]
  /**
   * the most prompts this server held at one moment, queued or running: ComfyUI runs one at a time and queues
   * the rest, so this (not the running count) tells how many jobs its clients handed the GPU at once
   */
  readonly maxQueued: number
  setBehaviour (changes: Partial<FakeComfyuiBehaviour>): void
  /** bytes of a stored file, as /view serves them */
  file (type: string, subfolder: string, filename: string): Buffer | undefined
  /** resolves when the prompt's history entry has been written */
  finished (promptId: string): Promise<void>
  close (): Promise<void>
}

interface Task {
  number: number
  prompt_id: string
  prompt: Graph
  extra_data: Record<string, unknown>
  outputs: string[]
  interrupted: boolean
}

interface StoredFile {
  bytes: Buffer
  mtime: Date
}

// Real media for every non-image output; PNGs are made per file so each has its own bytes.
const fixtureBytes = (fixture: { file: string }): Buffer => readFileSync(fixture.file)

const DEFAULT_CONTENT_TYPES: Record<string, string> = {
  '.png': 'image/png',
  '.webp': 'image/webp',
  '.flac': 'audio/flac',
  '.mp3': 'audio/mpeg',
  '.opus': 'audio/ogg',
  '.mp4': 'video/mp4',
  '.glb': 'model/gltf-binary'
}

const DEFAULT_BEHAVIOUR: FakeComfyuiBehaviour = {
  runMs: 60,
  historyDelayMs: 30,
  answerDelayMs: 0,
  webSocket: true,
  dropSocketsAfter: null,
  failNode: null,
  validationErrors: {},
  legacyServer: false,
  losePrompts: false,
  cutPromptResponses: 0,
  promptServerError: false,
  vanish: null,
  contentTypes: {},
  cutDownloads: null,
  garbage: null
}

const LOWERCASE_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

export async function startFakeComfyui (options: Partial<FakeComfyuiBehaviour> = {}): Promise<FakeComfyui> {
  let behaviour: FakeComfyuiBehaviour = { ...DEFAULT_BEHAVIOUR, ...options }
  const prompts: ReceivedPrompt[] = []
  const requests: ReceivedRequest[] = []
  const events: SentEvent[] = []
  const files = new Map<string, StoredFile>()
  const history = new Map<string, Record<string, unknown>>()
  const finishWaiters = new Map<string, Array<() => void>>()
  const cache = new Map<string, Record<string, Record<string, unknown>>>()
  const pending: Task[] = []
  let running: Task | null = null
  let runningNode: string | null = null
  let number = 0
  let maxQueued = 0
  let working = false
  const sockets = new Map<string, WebSocket>()
  const stop = new AbortController()

  const wss = new WebSocketServer({ noServer: true })
  const server = createServer((req, res) => {
    handle(req, res).catch((err: Error) => {
      if (!res.headersSent) plain(res, 500, `500 Internal Server Error\n\n${err.message}`)
    })
  })

  // ---- WebSocket ----------------------------------------------------------

  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://fake')
    const path = routePath(url.pathname)
    const refuse = (status: string): void => {
      socket.end(`HTTP/1.1 ${status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`)
    }
    requests.push({ method: 'GET', url: req.url ?? '', headers: req.headers })
    if (!originMatches(req)) return refuse('403 Forbidden')
    if (path !== '/ws' || !behaviour.webSocket) return refuse('404 Not Found')
    wss.handleUpgrade(req, socket, head, (ws) => {
      const sid = url.searchParams.get('clientId') || randomBytes(16).toString('hex')
      // A second socket with the same clientId replaces the first, without closing it.
      sockets.set(sid, ws)
      ws.on('close', () => { if (sockets.get(sid) === ws) sockets.delete(sid) })
      ws.on('error', () => {})
      sendTo(ws, 'status', { status: queueInfo(), sid })
      if (running && clientOf(running) === sid && runningNode !== null) {
        sendTo(ws, 'executing', { node: runningNode, prompt_id: running.prompt_id })
      }
    })
  })

  function sendTo (ws: WebSocket, type: string, data: Record<string, unknown>): void {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type, data }))
  }

  // Like PromptServer.send_sync: to one client id, or to everyone when there is none.
  function send (type: string, data: Record<string, unknown>, to: string | null): void {
    events.push({ type, data, to })
    if (to === null) {
      for (const ws of sockets.values()) sendTo(ws, type, data)
    } else {
      const ws = sockets.get(to)
      if (ws) sendTo(ws, type, data)
    }
    if (behaviour.dropSocketsAfter === type) {
      for (const ws of sockets.values()) ws.terminate()
      sockets.clear()
    }
  }

  function sendPreview (to: string | null): void {
    // Binary frame: big-endian event type 1 (PREVIEW_IMAGE), then image type 2 (PNG), then the image.
    const frame = Buffer.concat([Buffer.from([0, 0, 0, 1, 0, 0, 0, 2]), makePng('preview')])
    const targets = to === null ? [...sockets.values()] : [sockets.get(to)].filter((ws) => ws !== undefined)
    for (const ws of targets) if (ws.readyState === ws.OPEN) ws.send(frame)
  }

  // ---- HTTP ---------------------------------------------------------------

  async function handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    requests.push({ method: req.method ?? 'GET', url: req.url ?? '', headers: req.headers })
    const url = new URL(req.url ?? '/', 'http://fake')
    const path = routePath(url.pathname)
    const method = req.method ?? 'GET'
    // The origin-only middleware: a browser page of another site must not queue work.
    if (!originMatches(req)) return empty(res, 403)
    const body = method === 'POST' ? await readBody(req) : ''
    if (behaviour.answerDelayMs > 0) await sleep(behaviour.answerDelayMs)
    if (behaviour.garbage !== null && (path === '/prompt' || path === '/queue' || path.startsWith('/history'))) return garbage(res, behaviour.garbage, path)

    if (method === 'POST' && path === '/prompt') return postPrompt(req, res, body)
    if (method === 'GET' && path === '/prompt') return json(res, 200, queueInfo())
    if (method === 'GET' && path === '/queue') return json(res, 200, queueListing())
    if (method === 'POST' && path === '/queue') return postQueue(res, body)
    if (method === 'POST' && path === '/interrupt') return postInterrupt(res, body)
    if (method === 'GET' && path === '/history') return getAllHistory(res, url)
    if (method === 'GET' && path.startsWith('/history/')) {
      const id = decodeURIComponent(path.slice('/history/'.length))
      const entry = history.get(id)
      return json(res, 200, entry ? { [id]: entry } : {})
    }
    if (method === 'POST' && path === '/history') return postHistory(res, body)
    if (method === 'GET' && path === '/view') return view(req, res, url)
    if (method === 'GET' && path === '/system_stats') return json(res, 200, systemStats())
    if (method === 'GET' && path === '/ws') return plain(res, 400, 'No WebSocket UPGRADE hdr: None\n Can "Upgrade" only to "WebSocket".')
    return plain(res, 404, '404: Not Found')
  }

  function postPrompt (req: IncomingMessage, res: ServerResponse, raw: string): void {
    let parsed: unknown
    try {
      parsed = JSON.parse(raw)
      if (behaviour.promptServerError) throw new Error('an on_prompt handler raised')
    } catch {
      return plain(res, 500, '500 Internal Server Error\n\nServer got itself in trouble')
    }
    const body = isRecord(parsed) ? parsed : {}
    const received: ReceivedPrompt = {
      status: 0,
      body,
      prompt_id: typeof body.prompt_id === 'string' ? body.prompt_id : undefined,
      client_id: typeof body.client_id === 'string' ? body.client_id : undefined,
      prompt: isRecord(body.prompt) ? body.prompt as Graph : undefined
    }
    prompts.push(received)
    const answer = (status: number, payload: unknown): void => {
      received.status = status
      json(res, status, payload)
    }

    if (!('prompt' in body)) {
      const error = { type: 'no_prompt', message: 'No prompt provided', details: 'No prompt provided', extra_info: {} }
      return answer(400, { error, node_errors: behaviour.legacyServer ? [] : {} })
    }
    let promptId: string = randomUUID()
    if (!behaviour.legacyServer && body.prompt_id !== undefined) {
      if (typeof body.prompt_id !== 'string' || !LOWERCASE_UUID.test(body.prompt_id)) {
        const error = { type: 'invalid_prompt_id', message: 'Invalid prompt_id', details: 'prompt_id must be a lowercase UUID', extra_info: {} }
        return answer(400, { error, node_errors: {} })
      }
      promptId = body.prompt_id
      if (history.has(promptId) || running?.prompt_id === promptId || pending.some((t) => t.prompt_id === promptId)) {
        return answer(409, { error: 'prompt_id already exists' })
      }
    }
    const validation = validate(body.prompt)
    if (!validation.ok) return answer(400, { error: validation.error, node_errors: validation.nodeErrors })

    const extra = isRecord(body.extra_data) ? { ...body.extra_data } : {}
    if (typeof body.client_id === 'string') extra.client_id = body.client_id
    const task: Task = { number: number++, prompt_id: promptId, prompt: body.prompt as Graph, extra_data: extra, outputs: validation.outputs, interrupted: false }
    pending.push(task)
    maxQueued = Math.max(maxQueued, pending.length + (running === null ? 0 : 1))
    send('status', { status: queueInfo() }, null)
    void work()

    if (behaviour.cutPromptResponses > 0) {
      behaviour.cutPromptResponses--
      req.socket.destroy()
      return
    }
    const nodeErrors = Object.keys(validation.nodeErrors).length === 0 && behaviour.legacyServer ? [] : validation.nodeErrors
    answer(200, { prompt_id: promptId, number: task.number, node_errors: nodeErrors })
  }

  type Validation =
    | { ok: true, outputs: string[], nodeErrors: Record<string, unknown> }
    | { ok: false, error: Record<string, unknown>, nodeErrors: Record<string, unknown> | [] }

  // execution.validate_prompt: structure first, then each output with its inputs.
  function validate (prompt: unknown): Validation {
    const graph = isRecord(prompt) ? prompt : {}
    for (const [id, node] of Object.entries(graph)) {
      if (!isRecord(node) || typeof node.class_type !== 'string') {
        return {
          ok: false,
          error: { type: 'invalid_prompt', message: 'Cannot execute because a node is missing the class_type property.', details: `Node ID '#${id}'`, extra_info: {} },
          nodeErrors: []
        }
      }
    }
    const outputs = Object.keys(graph).filter((id) => isOutputNode((graph as Graph)[id]?.class_type)).sort(byNodeId)
    if (outputs.length === 0) {
      return { ok: false, error: { type: 'prompt_no_outputs', message: 'Prompt has no outputs', details: '', extra_info: {} }, nodeErrors: [] }
    }
    const nodeErrors: Record<string, { errors: unknown[], dependent_outputs: string[], class_type: string }> = {}
    const good: string[] = []
    for (const output of outputs) {
      const bad = [...ancestors(graph as Graph, output)].filter((id) => behaviour.validationErrors[id] !== undefined)
      if (bad.length === 0) {
        good.push(output)
        continue
      }
      for (const id of bad) {
        const failure = behaviour.validationErrors[id] as ValidationFailure
        nodeErrors[id] ??= {
          errors: [{ type: failure.type ?? 'value_not_in_list', message: failure.message, details: failure.details ?? '', extra_info: {} }],
          dependent_outputs: [],
          class_type: String((graph as Graph)[id]?.class_type)
        }
        nodeErrors[id].dependent_outputs.push(output)
      }
    }
    if (good.length === 0) {
      return { ok: false, error: { type: 'prompt_outputs_failed_validation', message: 'Prompt outputs failed validation', details: '', extra_info: {} }, nodeErrors }
    }
    return { ok: true, outputs: good, nodeErrors }
  }

  function postQueue (res: ServerResponse, raw: string): void {
    const body = parseObject(raw)
    if (body.clear === true) pending.length = 0
    if (Array.isArray(body.delete)) {
      for (const id of body.delete) {
        const at = pending.findIndex((t) => t.prompt_id === id)
        if (at >= 0) pending.splice(at, 1)
      }
    }
    empty(res, 200)
  }

  function postInterrupt (res: ServerResponse, raw: string): void {
    const body = parseObject(raw)
    // Newer servers interrupt only the named prompt; without a name, whatever runs.
    if (running && (body.prompt_id === undefined || body.prompt_id === running.prompt_id)) running.interrupted = true
    empty(res, 200)
  }

  function postHistory (res: ServerResponse, raw: string): void {
    const body = parseObject(raw)
    if (body.clear === true) history.clear()
    if (Array.isArray(body.delete)) for (const id of body.delete) history.delete(String(id))
    empty(res, 200)
  }

  function getAllHistory (res: ServerResponse, url: URL): void {
    let entries = [...history.entries()]
    const max = url.searchParams.get('max_items')
    if (max !== null) entries = entries.slice(-Number(max))
    json(res, 200, Object.fromEntries(entries))
  }

  function view (req: IncomingMessage, res: ServerResponse, url: URL): void {
    const query = url.searchParams
    const requested = query.get('filename')
    if (requested === null) return empty(res, 404)
    if (requested === '') return plain(res, 500, '500 Internal Server Error\n\nServer got itself in trouble')
    if (requested.startsWith('/') || requested.includes('..')) return empty(res, 400)
    const type = query.get('type') ?? 'output'
    if (type !== 'output' && type !== 'temp' && type !== 'input') return empty(res, 400)
    let subfolder = ''
    if (query.has('subfolder')) {
      const root = `/${type}`
      const full = posix.resolve(root, query.get('subfolder') ?? '')
      if (full !== root && !full.startsWith(root + '/')) return empty(res, 403)
      subfolder = posix.relative(root, full)
    }
    const filename = posix.basename(requested)
    const stored = files.get(fileKey(type, subfolder, filename))
    if (!stored) return empty(res, 404)
    if (query.has('preview')) {
      // Re-encoded for display: not the original bytes.
      res.writeHead(200, { 'Content-Type': 'image/webp', 'Content-Disposition': `filename="${filename.replace('png', 'webp')}"` })
      res.end(fixtureBytes(fixtures.webp))
      return
    }
    const extension = posix.extname(filename).toLowerCase()
    const contentType = behaviour.contentTypes[extension] ?? DEFAULT_CONTENT_TYPES[extension] ?? 'application/octet-stream'
    const etag = `"${createHash('sha1').update(stored.bytes).digest('hex').slice(0, 16)}"`
    const headers: Record<string, string | number> = {
      'Content-Type': contentType,
      'Content-Disposition': `filename="${filename}"`,
      'Accept-Ranges': 'bytes',
      ETag: etag,
      'Last-Modified': stored.mtime.toUTCString()
    }
    const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '')
    if (range && (range[1] !== '' || range[2] !== '')) {
      const size = stored.bytes.length
      const start = range[1] === '' ? Math.max(0, size - Number(range[2])) : Number(range[1])
      const end = range[1] === '' || range[2] === '' ? size - 1 : Math.min(Number(range[2]), size - 1)
      if (start > end || start >= size) {
        res.writeHead(416, { 'Content-Range': `bytes */${size}` })
        res.end()
        return
      }
      res.writeHead(206, { ...headers, 'Content-Range': `bytes ${start}-${end}/${size}`, 'Content-Length': end - start + 1 })
      res.end(stored.bytes.subarray(start, end + 1))
      return
    }
    res.writeHead(200, { ...headers, 'Content-Length': stored.bytes.length })
    if (behaviour.cutDownloads?.(filename) === true) {
      res.write(stored.bytes.subarray(0, stored.bytes.length >> 1), () => { res.destroy() })
      return
    }
    res.end(stored.bytes)
  }

  // ---- the prompt worker (main.py prompt_worker + execution.py) -------------

  async function work (): Promise<void> {
    if (working) return
    working = true
    try {
      for (;;) {
        pending.sort((a, b) => a.number - b.number)
        const task = pending.shift()
        if (!task) break
        running = task
        await execute(task)
        running = null
        runningNode = null
      }
    } catch {
      // close() aborted a sleep: the server is gone, nothing is left to run.
    } finally {
      working = false
    }
  }

  async function execute (task: Task): Promise<void> {
    const to = clientOf(task)
    const messages: Array<[string, Record<string, unknown>]> = []
    const event = (type: string, data: Record<string, unknown>): void => {
      const full = { ...data, prompt_id: task.prompt_id, timestamp: Date.now() }
      messages.push([type, full])
      send(type, full, to)
    }
    if (behaviour.losePrompts) {
      await sleep(behaviour.runMs / 2, undefined, { signal: stop.signal })
      send('status', { status: queueInfo() }, null)
      return
    }
    event('execution_start', {})
    const order = executionOrder(task.prompt, task.outputs)
    const cacheKey = JSON.stringify(task.prompt)
    const cached = cache.get(cacheKey)
    event('execution_cached', { nodes: cached ? order : [] })
    const outputs: Record<string, Record<string, unknown>> = cached ? structuredClone(cached) : {}
    const executed: string[] = []
    let failed = false
    const stepMs = behaviour.runMs / Math.max(1, order.length)
    for (const id of cached ? [] : order) {
      const node = task.prompt[id] as Graph[string]
      const classType = String(node.class_type)
      runningNode = id
      send('executing', { node: id, display_node: id, prompt_id: task.prompt_id }, to)
      // A node that only an interrupt ends, so a test can press "cancel" at a known node however slow the machine is.
      while (behaviour.holdNode === id && !task.interrupted) await sleep(5, undefined, { signal: stop.signal })
      const steps = typeof node.inputs?.steps === 'number' ? Math.min(node.inputs.steps, 3) : 0
      for (let step = 1; step <= steps; step++) {
        await sleep(stepMs / (steps + 1), undefined, { signal: stop.signal })
        send('progress', { value: step, max: steps, prompt_id: task.prompt_id, node: id }, to)
        sendPreview(to)
      }
      await sleep(steps > 0 ? stepMs / (steps + 1) : stepMs, undefined, { signal: stop.signal })
      // Like comfy.model_management's interrupt check: the node stops without output.
      if (task.interrupted) {
        event('execution_interrupted', { node_id: id, node_type: classType, executed })
        failed = true
        break
      }
      if (behaviour.failNode?.node === id) {
        const failure = behaviour.failNode
        event('execution_error', {
          node_id: id,
          node_type: classType,
          executed,
          exception_message: failure.exceptionMessage ?? 'Allocation on device \n',
          exception_type: failure.exceptionType ?? 'torch.OutOfMemoryError',
          traceback: ['  File "execution.py", line 496, in execute\n'],
          current_inputs: {},
          current_outputs: {}
        })
        failed = true
        break
      }
      const ui = runNode(id, classType, node.inputs ?? {}, task.prompt)
      if (ui) {
        outputs[id] = ui
        send('executed', { node: id, display_node: id, output: ui, prompt_id: task.prompt_id }, to)
      }
      executed.push(id)
    }
    if (!failed) {
      event('execution_success', {})
      if (!cached) cache.set(cacheKey, structuredClone(outputs))
    }
    // execution_success is out; the history is written only now.
    await sleep(behaviour.historyDelayMs, undefined, { signal: stop.signal })
    history.set(task.prompt_id, {
      prompt: [task.number, task.prompt_id, task.prompt, task.extra_data, task.outputs],
      outputs,
      status: { status_str: failed ? 'error' : 'success', completed: !failed, messages },
      meta: Object.fromEntries(Object.keys(outputs).map((id) => [id, { node_id: id, display_node: id, parent_node: null, real_node_id: id }]))
    })
    running = null
    runningNode = null
    for (const resolve of finishWaiters.get(task.prompt_id) ?? []) resolve()
    finishWaiters.delete(task.prompt_id)
    send('executing', { node: null, prompt_id: task.prompt_id }, to)
    send('status', { status: queueInfo() }, null)
  }

  // What each output node puts into the history, under the key its node uses.
  function runNode (id: string, classType: string, inputs: Record<string, unknown>, graph: Graph): Record<string, unknown> | null {
    const prefix = (fallback: string): string => typeof inputs.filename_prefix === 'string' ? inputs.filename_prefix : fallback
    const save = (type: 'output' | 'temp', filenamePrefix: string, name: (base: string, counter: number) => string, bytes: (filename: string) => Buffer, count = 1): Array<{ filename: string, subfolder: string, type: string }> => {
      const slash = filenamePrefix.lastIndexOf('/')
      const subfolder = slash >= 0 ? filenamePrefix.slice(0, slash) : ''
      const base = filenamePrefix.slice(slash + 1)
      let counter = nextCounter(type, subfolder, base)
      const refs = []
      for (let i = 0; i < count; i++, counter++) {
        const filename = name(base, counter)
        const info: FakeFileInfo = { node_id: id, class_type: classType, type, subfolder, filename }
        if (!behaviour.vanish?.(info)) files.set(fileKey(type, subfolder, filename), { bytes: bytes(filename), mtime: new Date() })
        refs.push({ filename, subfolder, type })
      }
      return refs
    }
    const pad = (n: number): string => String(n).padStart(5, '0')
    const comfyName = (extension: string) => (base: string, counter: number) => `${base}_${pad(counter)}_.${extension}`
    switch (classType) {
      case 'SaveImage':
        return { images: save('output', prefix('ComfyUI'), comfyName('png'), makePng, batchSize(graph, id)) }
      case 'PreviewImage':
        return { images: save('temp', 'ComfyUI_temp_' + randomLetters(5), comfyName('png'), makePng, batchSize(graph, id)) }
      case 'SaveAnimatedWEBP':
        return { images: save('output', prefix('ComfyUI'), comfyName('webp'), () => fixtureBytes(fixtures.webp)), animated: [true] }
      case 'SaveAudio':
        return { audio: save('output', prefix('audio/ComfyUI'), comfyName('flac'), () => fixtureBytes(fixtures.flac)) }
      case 'SaveAudioMP3':
        return { audio: save('output', prefix('audio/ComfyUI'), comfyName('mp3'), () => fixtureBytes(fixtures.mp3)) }
      case 'SaveVideo':
        return { images: save('output', prefix('video/ComfyUI'), comfyName('mp4'), () => fixtureBytes(fixtures.mp4)), animated: [true] }
      case 'VHS_VideoCombine': {
        const refs = save('output', prefix('AnimateDiff'), (base, counter) => `${base}_${pad(counter)}.mp4`, () => fixtureBytes(fixtures.mp4))
        const frameRate = typeof inputs.frame_rate === 'number' ? inputs.frame_rate : 8
        return {
          gifs: refs.map((ref) => ({
            ...ref,
            format: 'video/h264-mp4',
            frame_rate: frameRate,
            workflow: ref.filename.replace('.mp4', '.png'),
            fullpath: `/srv/comfyui/output/${ref.subfolder ? ref.subfolder + '/' : ''}${ref.filename}`
          }))
        }
      }
      case 'SaveGLB':
        return { '3d': save('output', prefix('mesh/ComfyUI'), comfyName('glb'), () => fixtureBytes(fixtures.glb)) }
      case 'SaveLatent':
        return { latents: save('output', prefix('latents/ComfyUI'), (base, counter) => `${base}_${pad(counter)}_.latent`, () => Buffer.from('latent tensor')) }
      case 'PreviewAny':
        return { text: [String(inputs.source ?? '')] }
      default:
        return null
    }
  }

  function nextCounter (type: string, subfolder: string, base: string): number {
    let highest = 0
    const pattern = new RegExp(`^${escapeRegExp(base)}_(\\d{5})`)
    for (const key of files.keys()) {
      const dir = posix.dirname(key)
      if (dir !== posix.join(type, subfolder)) continue
      const match = pattern.exec(posix.basename(key))
      if (match) highest = Math.max(highest, Number(match[1]))
    }
    return highest + 1
  }

  // ---- helpers ------------------------------------------------------------

  function clientOf (task: Task): string | null {
    return typeof task.extra_data.client_id === 'string' ? task.extra_data.client_id : null
  }

  function queueInfo (): Record<string, unknown> {
    return { exec_info: { queue_remaining: pending.length + (running ? 1 : 0) } }
  }

  function queueListing (): Record<string, unknown> {
    const row = (t: Task): unknown[] => [t.number, t.prompt_id, t.prompt, t.extra_data, t.outputs]
    return { queue_running: running ? [row(running)] : [], queue_pending: pending.map(row) }
  }

  function originMatches (req: IncomingMessage): boolean {
    const origin = req.headers.origin
    const host = req.headers.host
    if (origin === undefined || host === undefined) return true
    let originHost: string
    try {
      originHost = new URL(origin).host.toLowerCase()
    } catch {
      return false
    }
    return originHost === host.toLowerCase()
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo

  return {
    url: `http://127.0.0.1:${port}`,
    prompts,
    requests,
    events,
    get maxQueued () { return maxQueued },
    setBehaviour (changes) {
      behaviour = { ...behaviour, ...changes }
    },
    file (type, subfolder, filename) {
      return files.get(fileKey(type, subfolder, filename))?.bytes
    },
    async finished (promptId) {
      if (history.has(promptId)) return
      await new Promise<void>((resolve) => {
        finishWaiters.set(promptId, [...(finishWaiters.get(promptId) ?? []), resolve])
      })
    },
    async close () {
      stop.abort()
      for (const ws of wss.clients) ws.terminate()
      wss.close()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

const OUTPUT_NODES = new Set([
  'SaveImage', 'PreviewImage', 'SaveAnimatedWEBP', 'SaveAudio', 'SaveAudioMP3', 'SaveVideo',
  'VHS_VideoCombine', 'SaveGLB', 'SaveLatent', 'PreviewAny'
])

function isOutputNode (classType: unknown): boolean {
  return typeof classType === 'string' && OUTPUT_NODES.has(classType)
}

// Every route is served at /X and at /api/X.
function routePath (pathname: string): string {
  return pathname.startsWith('/api/') ? pathname.slice(4) : pathname
}

function linkedIds (graph: Graph, id: string): string[] {
  return Object.values(graph[id]?.inputs ?? {})
    .filter((value): value is [string, number] => Array.isArray(value) && value.length === 2 && typeof value[0] === 'string' && value[0] in graph)
    .map((value) => value[0])
}

function ancestors (graph: Graph, id: string, seen = new Set<string>()): Set<string> {
  if (seen.has(id)) return seen
  seen.add(id)
  for (const parent of linkedIds(graph, id)) ancestors(graph, parent, seen)
  return seen
}

// Inputs before the nodes that use them, outputs in id order.
function executionOrder (graph: Graph, outputs: string[]): string[] {
  const order: string[] = []
  const visit = (id: string): void => {
    if (order.includes(id)) return
    for (const parent of linkedIds(graph, id).sort(byNodeId)) visit(parent)
    order.push(id)
  }
  for (const output of outputs) visit(output)
  return order
}

function batchSize (graph: Graph, id: string): number {
  let size = 1
  for (const ancestor of ancestors(graph, id)) {
    const value = graph[ancestor]?.inputs?.batch_size
    if (typeof value === 'number' && value > size) size = value
  }
  return size
}

// Tiny PNGs whose pixels depend on the file name, so every file has its own bytes.
function makePng (seed: string): Buffer {
  const png = new PNG({ width: 4, height: 4 })
  const colour = createHash('sha256').update(seed).digest()
  for (let i = 0; i < png.data.length; i += 4) {
    png.data[i] = colour[0] as number
    png.data[i + 1] = colour[1] as number
    png.data[i + 2] = colour[2] as number
    png.data[i + 3] = 255
  }
  return PNG.sync.write(png)
}

function systemStats (): Record<string, unknown> {
  return {
    system: {
      os: 'posix',
      ram_total: 67_258_617_856,
      ram_free: 51_539_607_552,
      comfyui_version: '0.3.64',
      required_frontend_version: '1.27.10',
      python_version: '3.12.3 (main, Aug 14 2025, 17:47:21) [GCC 13.3.0]',
      pytorch_version: '2.8.0+cu128',
      embedded_python: false,
      argv: ['main.py', '--listen', '127.0.0.1']
    },
    devices: [{
      name: 'cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync',
      type: 'cuda',
      index: 0,
      vram_total: 25_393_692_672,
      vram_free: 24_017_436_672,
      torch_vram_total: 0,
      torch_vram_free: 0
    }]
  }
}

function byNodeId (a: string, b: string): number {
  return Number(a) - Number(b) || a.localeCompare(b)
}

function fileKey (type: string, subfolder: string, filename: string): string {
  return posix.join(type, subfolder, filename)
}

function randomLetters (count: number): string {
  return Array.from(randomBytes(count), (b) => String.fromCharCode(97 + (b % 26))).join('')
}

function escapeRegExp (text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

async function readBody (req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

function parseObject (raw: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(raw)
    return isRecord(value) ? value : {}
  } catch {
    return {}
  }
}

// Parses, or not, but never says what ComfyUI would: no prompt_id, someone else's history, queues that are no lists.
function garbage (res: ServerResponse, kind: 'html' | 'wrong_json', path: string): void {
  if (kind === 'html') {
    const page = '<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></body></html>'
    res.writeHead(200, { 'Content-Type': 'text/html', 'Content-Length': Buffer.byteLength(page) })
    res.end(page)
    return
  }
  if (path === '/prompt') return json(res, 200, { queued: true })
  if (path === '/queue') return json(res, 200, { queue_running: {}, queue_pending: 'none' })
  json(res, 200, { 'someone-else': { outputs: {}, status: { completed: true } } })
}

function json (res: ServerResponse, status: number, payload: unknown): void {
  const body = JSON.stringify(payload)
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body) })
  res.end(body)
}

function plain (res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) })
  res.end(text)
}

function empty (res: ServerResponse, status: number): void {
  res.writeHead(status, { 'Content-Length': 0 })
  res.end()
}

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
