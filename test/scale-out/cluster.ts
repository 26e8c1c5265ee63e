import type { Test } from 'tap'
import { ConfigSchema } from '../../config.js'
import type { RunMetadata } from '../../schemas/run.js'
import { mediaUrl } from '../../services/media/media-url.js'
import { startFakeComfyui, type FakeComfyui } from '../fakes/comfyui.js'
import { startFakeS3 } from '../fakes/s3-server.js'
import { tempRunsDir } from '../helper.js'
import { pipelineLike, testConfigsDir } from '../pipeline-setup.js'
import { freshDatabase } from '../postgres.js'
import { startServer, startupDone, type ServerProcess } from '../reliability/server-process.js'
import { sha256 } from '../reliability/store-check.js'

export const COMFYUI_CONCURRENCY = 1

/** Whether this checkout's instances end the runs of an instance that stopped without closing, while they run (not only at a start). */
export const findsStoppedInstances = 'STOPPED_INSTANCE_CHECK_MS' in ConfigSchema.properties

export interface Cluster {
  databaseUrl: string
  comfyui: FakeComfyui
  /** started instances, in start order (killed ones stay in the list) */
  instances: ServerProcess[]
  /** starts another instance over the same bucket and database, with a RUNS_DIR of its own, and waits until its start's work is done */
  start: () => Promise<ServerProcess>
  /** how long each start took until startup_done, in ms */
  starts: number[]
}

/**
 * What the compose setup runs, on 127.0.0.1: one PostgreSQL database, one S3
 * bucket and one ComfyUI for every instance; each instance has only its own
 * RUNS_DIR (media on their way in, thumbnails), as a container's anonymous volume.
 */
export async function startCluster (t: Test, comfyuiRunMs: number): Promise<Cluster> {
  const databaseUrl = await freshDatabase(t)
  const s3 = await startFakeS3(t)
  // No history delay: the race it stands for is tested elsewhere; here it would only stretch the serialized ComfyUI half.
  const comfyui = await startFakeComfyui({ runMs: comfyuiRunMs, historyDelayMs: 0 })
  t.teardown(comfyui.close)
  // The shipped dada prefers ComfyUI in eco once COMFYUI_URL is set; here a request without output_configs
  // must take the builtin generator, so that half the load never waits for the one GPU slot.
  const dada = await pipelineLike('dada', (p) => { p.default_outputs.eco = 'builtin_image' })
  const configsDir = await testConfigsDir(t, { pipelines: [dada] })
  const env = {
    ...s3.env,
    DATABASE_URL: databaseUrl,
    CONFIGS_DIR: configsDir,
    COMFYUI_URL: comfyui.url,
    COMFYUI_CONCURRENCY: String(COMFYUI_CONCURRENCY),
    // Room for the whole load: a refusal would be the limit working, not what this test is about.
    GENERATION_QUEUE_LIMIT: '200',
    // Small, so the survivors notice the killed instance within the test (ignored where the setting does not exist yet).
    STOPPED_INSTANCE_CHECK_MS: '500'
  }
  const instances: ServerProcess[] = []
  const starts: number[] = []
  // Killed in teardown whatever happened: a process left running would hold the database and the test's output open.
  t.teardown(async () => { await Promise.all(instances.map(async (instance) => { await instance.kill() })) })
  const start = async (): Promise<ServerProcess> => {
    const began = Date.now()
    // Starts with the TypeScript loader take tens of seconds on two busy cores, several at once longer still.
    const instance = await startServer({ ...env, RUNS_DIR: await tempRunsDir(t) }, 300_000)
    instances.push(instance)
    await startupDone(instance.url, 300_000)
    starts.push(Date.now() - began)
    return instance
  }
  return { databaseUrl, comfyui, instances, start, starts }
}

export type Answer =
  | { kind: 'answer', status: number, body: any }
  /** the connection failed or was cut before a whole answer: nothing acknowledged */
  | { kind: 'none', error: string }

export async function call (url: string, init: RequestInit = {}): Promise<Answer> {
  try {
    const res = await fetch(url, init)
    const text = await res.text()
    let body: unknown = text
    try { body = JSON.parse(text) } catch {}
    return { kind: 'answer', status: res.status, body }
  } catch (err) {
    return { kind: 'none', error: (err as Error).message }
  }
}

export const execute = async (base: string, body: Record<string, unknown>): Promise<Answer> =>
  await call(`${base}/api/schema/pipeline/execute`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

/** What a user reading the run from this instance gets: its metadata, and the sha256 of each output's bytes as served. */
export interface RunAsServed {
  status: number
  metadata: RunMetadata | null
  /** per output: the served bytes' sha256, or the answer's status when it was not 200 */
  media: Array<{ url: string, status: number, sha256: string | null }>
}

export async function readRun (base: string, runId: string): Promise<RunAsServed> {
  const answer = await call(`${base}/api/runs/${runId}`)
  if (answer.kind === 'none' || answer.status !== 200) return { status: answer.kind === 'none' ? 0 : answer.status, metadata: null, media: [] }
  const metadata = answer.body as RunMetadata
  const media = []
  for (const output of metadata.outputs) {
    const url = mediaUrl(metadata, output)
    const res = await fetch(`${base}${url}`)
    const bytes = Buffer.from(await res.arrayBuffer())
    media.push({ url, status: res.status, sha256: res.status === 200 ? sha256(bytes) : null })
  }
  return { status: 200, metadata, media }
}

/**
 * Why the run as served is not whole (completed, at least one output, each
 * output's bytes matching the sha256 its metadata names); null when it is.
 */
export function wholeRunProblem (run: RunAsServed): string | null {
  if (run.metadata === null) return `GET /api/runs/:id answered ${run.status}`
  if (run.metadata.status !== 'completed') return `status ${run.metadata.status}`
  if (run.metadata.outputs.length === 0) return 'no outputs'
  for (const [i, output] of run.metadata.outputs.entries()) {
    const served = run.media[i]!
    if (served.status !== 200) return `${served.url} answered ${served.status}`
    if (served.sha256 !== output.sha256) return `${served.url} served bytes with sha256 ${served.sha256 ?? ''}, metadata says ${output.sha256}`
  }
  return null
}
