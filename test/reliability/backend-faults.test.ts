import t from 'tap'
import { appendFile, mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../app.js'
import { startFakeComfyui, type FakeComfyuiBehaviour } from '../fakes/comfyui.js'
import { llmReplies, startFakeLlm, type FakeLlmReply } from '../fakes/llm.js'
import { startFakeOpenai, type OpenaiStep } from '../fakes/openai.js'
import { startFakeOpenrouter, type OpenrouterStep } from '../fakes/openrouter.js'
import { startFakeReplicate, type ReplicateScript } from '../fakes/replicate.js'
import { testConfig } from '../helper.js'
import { parseSse, testConfigsDir, tinyImage } from '../pipeline-setup.js'
import { mapLimited } from './concurrency.js'

// Every backend the pipeline talks to, failing in every way it can: each
// execute ends (none hangs) with an answer in the contract's shape, and its
// run is recorded as failed with the error's code, which /api/media/info and
// the listing say too. `npm run test:reliability` (RELIABILITY_FULL=1) sends
// each cell several executes at once, as a class would. Timeouts are small
// but far above a healthy answer on a loaded machine, so that a cell fails by
// its fault and never by the clock.
const FULL = process.env.RELIABILITY_FULL === '1'
/** executes of each kind (JSON, event stream) a cell sends at once in the full run */
const AT_ONCE = 4
const EXECUTE = '/api/schema/pipeline/execute'
/** Far above every timeout below, with room for a queue: an execute still open then has hung. */
const HUNG_MS = 60_000

type Outcome = { status: number, code: string } | 'completed'

interface Cell {
  backend: string
  fault: string
  /** the output config the execute asks for */
  output: string
  /** starts the fakes, set up to fail; returns the settings that point the app at them and how to stop them */
  start: () => Promise<{ env: Record<string, string>, close: () => Promise<void> }>
  outcome: Outcome
}

const FAILED: Outcome = { status: 502, code: 'BACKEND_FAILED' }
const TIMED_OUT: Outcome = { status: 504, code: 'BACKEND_TIMEOUT' }

/** A URL nobody listens on: connections are refused. */
async function nobodyListening (): Promise<string> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return `http://127.0.0.1:${port}`
}

function comfyui (fault: string, behaviour: Partial<FakeComfyuiBehaviour> | 'down', outcome: Outcome): Cell {
  const timeouts = { COMFYUI_REQUEST_TIMEOUT_MS: '2000', COMFYUI_TIMEOUT_MS: '5000' }
  return {
    backend: 'comfyui',
    fault,
    output: 'sd35_large',
    outcome,
    start: async () => {
      if (behaviour === 'down') return { env: { COMFYUI_URL: await nobodyListening(), ...timeouts }, close: async () => {} }
      const fake = await startFakeComfyui(behaviour)
      return { env: { COMFYUI_URL: fake.url, ...timeouts }, close: fake.close }
    }
  }
}

function cloud (backend: 'openai' | 'openrouter' | 'replicate', fault: string, setup: OpenaiStep | OpenrouterStep | ReplicateScript | 'down', outcome: Outcome): Cell {
  const names = { openai: ['OPENAI', 'gpt_image'], openrouter: ['OPENROUTER', 'openrouter_image'], replicate: ['REPLICATE', 'replicate_flux'] } as const
  const [prefix, output] = names[backend]
  const keyName = backend === 'replicate' ? 'REPLICATE_API_TOKEN' : `${prefix}_API_KEY`
  return {
    backend,
    fault,
    output,
    outcome,
    start: async () => {
      const timeout = { BACKEND_TIMEOUT_MS: '3000' }
      if (setup === 'down') return { env: { [keyName]: 'key', [`${prefix}_BASE_URL`]: `${await nobodyListening()}/v1`, ...timeout }, close: async () => {} }
      if (backend === 'replicate') {
        const fake = await startFakeReplicate()
        fake.behave(setup as ReplicateScript)
        return { env: { [keyName]: fake.apiToken, [`${prefix}_BASE_URL`]: fake.baseUrl, ...timeout }, close: fake.close }
      }
      const fake = backend === 'openai' ? await startFakeOpenai() : await startFakeOpenrouter()
      ;(fake.behave as (step: OpenaiStep | OpenrouterStep) => void)(setup as OpenaiStep | OpenrouterStep)
      return { env: { [keyName]: fake.apiKey, [`${prefix}_BASE_URL`]: fake.baseUrl, ...timeout }, close: fake.close }
    }
  }
}

function llm (fault: string, reply: FakeLlmReply | 'down', outcome: Outcome): Cell {
  return {
    backend: 'llm',
    fault,
    output: tinyImage.name,
    outcome,
    start: async () => {
      const settings = { LLM_ECO_MODEL: 'llama3.2', LLM_TIMEOUT_MS: '2000' }
      if (reply === 'down') return { env: { LLM_ECO_BASE_URL: `${await nobodyListening()}/v1`, ...settings }, close: async () => {} }
      const fake = await startFakeLlm({ responder: () => reply })
      return { env: { LLM_ECO_BASE_URL: `${fake.url}/v1`, ...settings }, close: fake.close }
    }
  }
}

const HTML_PAGE = '<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>'

const CELLS: Cell[] = [
  comfyui('down', 'down', FAILED),
  comfyui('slow: answers after the request timeout', { answerDelayMs: 30_000 }, TIMED_OUT),
  comfyui('slow: a job longer than COMFYUI_TIMEOUT_MS', { runMs: 30_000 }, TIMED_OUT),
  comfyui('500 from POST /prompt', { promptServerError: true }, FAILED),
  comfyui('garbage: an HTML page for JSON', { garbage: 'html' }, FAILED),
  comfyui('garbage: JSON of the wrong shape', { garbage: 'wrong_json' }, FAILED),
  comfyui('lost prompt: it leaves the queue without a history', { losePrompts: true }, FAILED),
  comfyui('WebSocket dropped mid-run: polling finds the result', { dropSocketsAfter: 'execution_start' }, 'completed'),
  comfyui('WebSocket refused: polling finds the result', { webSocket: false }, 'completed'),
  comfyui('output vanished: /view answers 404', { vanish: () => true }, FAILED),
  comfyui('output cut off mid-download', { cutDownloads: () => true }, FAILED),
  cloud('openai', 'down', 'down', FAILED),
  cloud('openai', 'slow', { kind: 'slow', delayMs: 20_000 }, TIMED_OUT),
  cloud('openai', '500', { kind: 'server_error' }, FAILED),
  cloud('openai', 'garbage: a proxy\'s HTML page', { kind: 'proxy_error' }, FAILED),
  cloud('openai', 'garbage: base64 that is none', { kind: 'bad_base64' }, FAILED),
  cloud('openai', 'wrong JSON: no image in a 200', { kind: 'no_image' }, FAILED),
  cloud('openrouter', 'down', 'down', FAILED),
  cloud('openrouter', 'slow', { kind: 'slow', delayMs: 20_000 }, TIMED_OUT),
  cloud('openrouter', '500', { kind: 'server_error' }, FAILED),
  cloud('openrouter', 'garbage: a proxy\'s HTML page', { kind: 'proxy_error' }, FAILED),
  cloud('openrouter', 'garbage: a data URI that is none', { kind: 'bad_data_uri' }, FAILED),
  cloud('openrouter', 'wrong JSON: an error inside a 200', { kind: 'error_in_200' }, FAILED),
  cloud('replicate', 'down', 'down', FAILED),
  cloud('replicate', 'slow', { createDelayMs: 20_000 }, TIMED_OUT),
  cloud('replicate', '500', { createError: 500 }, FAILED),
  cloud('replicate', 'garbage: an HTML page for the prediction', { rawCreateAnswer: { status: 200, contentType: 'text/html', body: HTML_PAGE } }, FAILED),
  cloud('replicate', 'output vanished: the file URL answers 404', { statuses: ['succeeded'], filesRemoved: true }, FAILED),
  llm('down', 'down', FAILED),
  llm('slow', llmReplies.slow(20_000), TIMED_OUT),
  llm('500', llmReplies.serverError(), FAILED),
  llm('garbage: an HTML page', { kind: 'raw', status: 200, body: HTML_PAGE, contentType: 'text/html' }, FAILED),
  llm('wrong JSON: no choices', { kind: 'raw', status: 200, body: '{"object":"chat.completion","choices":[]}' }, FAILED)
]

t.test(`a backend fault matrix (${CELLS.length} cells, answered as JSON and as event streams): every run ends, recorded as failed with the error's code`, { timeout: FULL ? 600_000 : 90_000 }, async (t) => {
  const configsDir = await testConfigsDir(t, { outputs: [tinyImage] })
  const figures = { runs: 0, failed: 0, completed: 0 }
  const results = await mapLimited(CELLS, 4, async (cell, index) => {
    const fakes = await cell.start()
    const runsDir = await mkdtemp(join(tmpdir(), 'runstore-faults-'))
    let app: FastifyInstance | undefined
    try {
      // In the full run half the executes of a cell run on ComfyUI at once, the others wait in its queue meanwhile.
      app = await buildApp(testConfig(runsDir, { CONFIGS_DIR: configsDir, COMFYUI_CONCURRENCY: String(FULL ? AT_ONCE : 1), ...fakes.env }))
      // The short run answers every other cell as an event stream; the full one each cell both ways, several times at once.
      const modes = FULL ? Array.from({ length: AT_ONCE }, () => [false, true]).flat() : [index % 2 === 1]
      const runs = await Promise.all(modes.map(async (stream) => ({ stream, ...await executeOnce(app!, runsDir, cell, stream) })))
      for (const run of runs) {
        figures.runs++
        if (run.status === 'completed') figures.completed++
        else if (run.status === 'failed') figures.failed++
      }
      return runs.map((run) => ({ name: `${cell.backend}, ${cell.fault}, ${run.stream ? 'event stream' : 'JSON'}`, problems: run.problems }))
    } finally {
      await app?.close()
      await fakes.close()
      await rm(runsDir, { recursive: true, force: true })
    }
  })
  for (const { name, problems } of results.flat()) t.same(problems, [], name)
  const line = `backend faults: ${CELLS.length} cells over ${new Set(CELLS.map((c) => c.backend)).size} backends, ${figures.runs} executes (JSON and event stream), all ended: ${figures.failed} recorded as failed, ${figures.completed} completed by falling back to polling`
  t.equal(figures.failed + figures.completed, figures.runs, 'every run ended failed or completed, none is left running')
  t.comment(line)
  if (process.env.RELIABILITY_REPORT !== undefined) await appendFile(process.env.RELIABILITY_REPORT, line + '\n')
})

/** One execute against a failing backend, and everything wrong with how it ended. */
async function executeOnce (app: FastifyInstance, runsDir: string, cell: Cell, stream: boolean): Promise<{ status: string, problems: string[] }> {
  const problems: string[] = []
  const res = await withDeadline(app.inject({
    method: 'POST',
    url: EXECUTE,
    headers: stream ? { accept: 'text/event-stream' } : {},
    payload: { schema: 'dada', input_text: 'Eine Blume auf der Wiese', output_configs: [cell.output] }
  }), HUNG_MS, 'the execute hung')
  let runId: string | undefined
  let answered: { status: number, body: Record<string, unknown> }
  if (stream) {
    const events = parseSse(res.body)
    runId = events[0]?.event === 'run_created' ? events[0].data.run_id : undefined
    const last = events.at(-1)
    if (res.statusCode !== 200) problems.push(`the stream answered ${res.statusCode}`)
    if (cell.outcome === 'completed' ? last?.event !== 'completed' : last?.event !== 'error') problems.push(`the stream ended with ${last?.event ?? 'nothing'}`)
    const { run_id: eventRunId, stage, ...body } = (last?.data ?? {}) as Record<string, unknown>
    if (cell.outcome !== 'completed' && (eventRunId !== runId || typeof stage !== 'string')) problems.push('the error event names no run and stage')
    answered = { status: typeof body.statusCode === 'number' ? body.statusCode : 200, body }
  } else {
    runId = res.headers['x-run-id'] as string | undefined
    answered = { status: res.statusCode, body: res.json() }
  }
  if (runId === undefined) return { status: 'unknown', problems: [...problems, 'no run id in the answer'] }

  if (cell.outcome === 'completed') {
    if (answered.status !== 200) problems.push(`answered ${answered.status} ${String(answered.body.code)}, not the result`)
  } else {
    const keys = Object.keys(answered.body).sort().join(',')
    if (keys !== 'code,error,message,statusCode') problems.push(`the error has the fields ${keys}, not {statusCode, error, code, message}`)
    if (answered.status !== cell.outcome.status || answered.body.code !== cell.outcome.code) {
      problems.push(`answered ${answered.status} ${String(answered.body.code)} (${String(answered.body.message)}), expected ${cell.outcome.status} ${cell.outcome.code}`)
    }
  }

  // What was recorded: on disk, in the media info clients poll, in the listing.
  const expected = cell.outcome === 'completed' ? 'completed' : 'failed'
  const metadata = JSON.parse(await readFile(join(runsDir, runId, 'metadata.json'), 'utf8')) as { status: string, errors: Array<{ code?: unknown }>, outputs: Array<{ filename: string }> }
  if (metadata.status !== expected) problems.push(`metadata.json says ${metadata.status}`)
  if (cell.outcome !== 'completed') {
    const code = cell.outcome.code
    if (!metadata.errors.some((e) => e.code === code)) problems.push(`errors[] holds no ${code} record: ${JSON.stringify(metadata.errors)}`)
    if (metadata.errors.some((e) => typeof e.code !== 'string')) problems.push('an errors[] record without a code')
  } else if (metadata.status === 'completed' && metadata.outputs.length === 0) problems.push('completed without an output')
  const files = await readdir(join(runsDir, runId))
  const temporary = files.filter((name) => name.startsWith('.tmp-'))
  if (temporary.length > 0) problems.push(`temporary files left: ${temporary.join(', ')}`)
  for (const { filename } of metadata.outputs) if (!files.includes(filename)) problems.push(`${filename} is listed but missing`)
  const info = await app.inject({ url: `/api/media/info/${runId}` })
  if (info.statusCode !== 200 || info.json().status !== expected) problems.push(`/api/media/info answered ${info.statusCode} ${String(info.json().status)}`)
  const listed = (await app.inject({ url: `/api/runs?status=${expected}&limit=200` })).json().runs as Array<{ run_id: string }>
  if (!listed.some((run) => run.run_id === runId)) problems.push(`GET /api/runs?status=${expected} does not list the run`)
  return { status: metadata.status, problems }
}

async function withDeadline<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`${what} (${ms} ms)`)) }, ms) })
  try {
    return await Promise.race([promise, deadline])
  } finally {
    clearTimeout(timer)
  }
}
