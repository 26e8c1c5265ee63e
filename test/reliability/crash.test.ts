import t from 'tap'
import { randomInt } from 'node:crypto'
import { readFile, writeFile, appendFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { PNG } from 'pngjs'
import { tempRunsDir } from '../helper.js'
import { startServer, startupDone, type ServerProcess } from './server-process.js'
import { checkStore, sha256 } from './store-check.js'

// `npm test` runs a short version; `npm run test:reliability` sets RELIABILITY_FULL=1.
const FULL = process.env.RELIABILITY_FULL === '1'
const ROUNDS = FULL ? 12 : 2
const CLIENTS = 20
// Each round starts a server process (seconds with the TypeScript loader on a busy machine), so more than tap's default per file.
t.setTimeout(FULL ? 3_600_000 : 400_000)

type Acknowledged =
  | { kind: 'upload', run_id: string, index: number, sha256: string }
  | { kind: 'execute', run_id: string }
  | { kind: 'patch', run_id: string, transformed_text: string }

/** Noisy PNGs (deflate cannot shrink them) from 2 KiB to about 120 KiB, so writes take a while to land. */
function pngPool (): Buffer[] {
  return Array.from({ length: 12 }, (_, i) => {
    const side = 24 + i * 16
    const png = new PNG({ width: side, height: side })
    for (let p = 0; p < png.data.length; p++) png.data[p] = randomInt(256)
    return PNG.sync.write(png)
  })
}

class ServerGone extends Error {}

async function call (url: string, init: RequestInit): Promise<{ status: number, body: any }> {
  let res: Response
  try {
    res = await fetch(url, init)
  } catch {
    throw new ServerGone()
  }
  try {
    return { status: res.status, body: await res.json() }
  } catch {
    throw new ServerGone() // cut off mid-answer: nothing was acknowledged
  }
}

const json = (body: unknown): RequestInit => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

/** One child at a tablet: creates runs, uploads drawings, runs pipelines, until the server is gone. */
async function client (base: string, pool: Buffer[], acknowledged: Acknowledged[], refused: string[]): Promise<void> {
  for (;;) {
    try {
      const action = randomInt(3)
      if (action === 0) {
        const { status, body } = await call(`${base}/api/schema/pipeline/execute`, json({ schema: 'dada', input_text: `Eine Blume auf der Wiese ${randomInt(1e6)}` }))
        if (status !== 200) { refused.push(`execute: ${status} ${body.code}`); continue }
        acknowledged.push({ kind: 'execute', run_id: body.run_id })
        continue
      }
      const created = await call(`${base}/api/runs`, json({ schema: 'dada', execution_mode: 'eco', input_text: `Ein Baum ${randomInt(1e6)}` }))
      if (created.status !== 201) { refused.push(`create: ${created.status} ${created.body.code}`); continue }
      const runId = created.body.run_id as string
      if (action === 1) {
        const png = pool[randomInt(pool.length)]!
        const form = new FormData()
        form.append('config', 'upload')
        form.append('file', new Blob([new Uint8Array(png)], { type: 'image/png' }), 'drawing.png')
        const { status, body } = await call(`${base}/api/runs/${runId}/media`, { method: 'POST', body: form })
        if (status !== 201) { refused.push(`upload: ${status} ${body.code}`); continue }
        acknowledged.push({ kind: 'upload', run_id: runId, index: body.index, sha256: sha256(png) })
      } else {
        const text = `Ein Baum aus Glas ${randomInt(1e6)}`
        const { status, body } = await call(`${base}/api/runs/${runId}`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ transformed_text: text }) })
        if (status !== 200) { refused.push(`patch: ${status} ${body.code}`); continue }
        acknowledged.push({ kind: 'patch', run_id: runId, transformed_text: text })
      }
    } catch (err) {
      if (err instanceof ServerGone) return
      throw err
    }
  }
}

t.test(`kill -9 while ${CLIENTS} clients write, ${ROUNDS} rounds: every acknowledged write survives whole, nothing half-written, nothing left running`, async (t) => {
  const runsDir = await tempRunsDir(t)
  const env = { RUNS_DIR: runsDir, CONFIGS_DIR: join(process.cwd(), 'configs') }
  const pool = pngPool()
  const figures = { rounds: 0, acknowledged: 0, lost: 0, corrupt: 0, interrupted: 0, runs: 0, outputs: 0 }
  const acknowledged: Acknowledged[] = []
  let server: ServerProcess | undefined
  const starts: number[] = []
  t.teardown(async () => { await server?.kill() })

  const start = async (): Promise<ServerProcess> => {
    const started = Date.now()
    const process = await startServer(env)
    starts.push(Date.now() - started)
    return process
  }
  // The process that checks a round's store takes the next round's load.
  server = await start()
  for (let round = 1; round <= ROUNDS; round++) {
    const refused: string[] = []
    const clients = Array.from({ length: CLIENTS }, async () => { await client(server!.url, pool, acknowledged, refused) })
    // The kill falls at a random moment once the load is in full swing (the first answers of a fresh process are slow).
    const before = acknowledged.length
    const swing = before + 1 + randomInt(2 * CLIENTS)
    while (acknowledged.length < swing && refused.length === 0) await sleep(10)
    await sleep(randomInt(800))
    await server.kill()
    await Promise.all(clients)
    t.same(refused, [], `round ${round}: no write was refused before the kill`)

    server = await start()
    // The crash sweep and the index's catch-up run in the background of a start: the store is checked once they are done.
    await startupDone(server.url)
    const check = await checkStore(runsDir, { serviceUrl: server.url, afterRestart: true })
    t.same(check.problems, [], `round ${round}: the store is whole after the restart (${check.runs} runs, ${check.outputs} outputs)`)
    const interruptedNow = [...check.metadata.values()].filter((m) => m.errors.some((e) => e.code === 'RUN_INTERRUPTED')).length
    figures.interrupted = interruptedNow

    let lost = 0
    let corrupt = 0
    for (const ack of acknowledged) {
      const run = check.metadata.get(ack.run_id)
      if (run === undefined) { lost++; continue }
      if (ack.kind === 'upload') {
        const output = run.outputs[ack.index]
        if (output === undefined) lost++
        else if (output.sha256 !== ack.sha256 || sha256(await readFile(join(runsDir, ack.run_id, output.filename))) !== ack.sha256) corrupt++
      } else if (ack.kind === 'execute') {
        if (run.status !== 'completed' || run.outputs.length === 0) lost++
      } else if (run.transformed_text !== ack.transformed_text || await readFile(join(runsDir, ack.run_id, 'transformed_text.txt'), 'utf8') !== ack.transformed_text) {
        corrupt++
      }
    }
    t.equal(lost, 0, `round ${round}: no acknowledged write lost (${acknowledged.length} so far)`)
    t.equal(corrupt, 0, `round ${round}: no acknowledged write corrupt`)
    Object.assign(figures, { rounds: round, acknowledged: acknowledged.length, lost: figures.lost + lost, corrupt: figures.corrupt + corrupt, runs: check.runs, outputs: check.outputs })
  }
  await server.stop()
  server = undefined
  t.ok(figures.acknowledged >= ROUNDS, `every round had writes acknowledged before its kill (${figures.acknowledged} in all)`)
  const line = `kill -9: ${figures.rounds} rounds, ${CLIENTS} clients, ${figures.acknowledged} writes acknowledged, ${figures.lost} lost, ${figures.corrupt} corrupt; ${figures.runs} runs with ${figures.outputs} outputs on disk, ${figures.interrupted} ended as RUN_INTERRUPTED`
  t.comment(line, `(starts took ${starts.join(', ')} ms)`)
  if (process.env.RELIABILITY_REPORT !== undefined) await appendFile(process.env.RELIABILITY_REPORT, line + '\n')
})
