// The pipeline's own cost: POST /api/schema/pipeline/execute with the builtin
// text providers, timed end to end over HTTP, minus the time spent inside the
// generator (a wrapper backend times the builtin one). What is left is
// validation, the queue, the text stages, every metadata write (fsync'd) and
// the answer. Then runs per second with 32 concurrent clients.
import { spawn } from 'node:child_process'
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildApp } from '../app.js'
import { loadConfig } from '../config.js'
import { BuiltinBackend } from '../services/backends/builtin/backend.js'
import type { GenerationRequest, GeneratorBackend, MediaItem } from '../services/backends/types.js'
import type { RunStorage } from '../services/storage/run-storage.js'
import { loadSettings, median, ms, percentile, positiveInteger, printTable } from './report.js'

const TARGET_OVERHEAD_MS = 10
const CONFIGS = new URL('../../configs/', import.meta.url)
const BENCH_OUTPUT = 'bench_image'
const BACKEND = 'bench-timed'

/** The builtin generator, timed: how long the pipeline waited on it for each run. */
class TimedBackend implements GeneratorBackend {
  readonly name = BACKEND
  readonly inProcess = true
  readonly #inner = new BuiltinBackend()
  readonly #spentMs = new Map<string, number>()

  unavailableReason (): string | null {
    return null
  }

  /** Time the generator took for a run, forgotten once read. */
  take (runId: string): number {
    const spent = this.#spentMs.get(runId)
    if (spent === undefined) throw new Error(`no generation was timed for run ${runId}`)
    this.#spentMs.delete(runId)
    return spent
  }

  async * generate (request: GenerationRequest): AsyncGenerator<MediaItem> {
    const items = this.#inner.generate(request)[Symbol.asyncIterator]()
    let spent = 0
    try {
      for (;;) {
        // Only the generator's own steps count; storing what it yields is the pipeline's work.
        const start = performance.now()
        const next = await items.next()
        spent += performance.now() - start
        if (next.done === true) return
        yield next.value
      }
    } finally {
      this.#spentMs.set(request.run_id, spent)
    }
  }
}

/** Prints the pipeline's overhead and throughput; true when the target is met and every answer was right. */
export async function benchPipeline (): Promise<boolean> {
  const runs = positiveInteger('BENCH_PIPELINE_RUNS', 200)
  const warmupRuns = Math.max(10, Math.round(runs / 10))
  const { connections, seconds } = loadSettings()
  const runsDir = await mkdtemp(join(tmpdir(), 'runstore-bench-pipeline-'))
  const configsDir = await mkdtemp(join(tmpdir(), 'runstore-bench-configs-'))
  try {
    await copyConfigs(configsDir)
    const config = loadConfig({ RUNS_DIR: runsDir, CONFIGS_DIR: configsDir, LOG_LEVEL: 'warn', GENERATION_QUEUE_LIMIT: '1000' })
    const app = await buildApp(config)
    const timed = new TimedBackend()
    app.backends.register(timed, { concurrency: config.BACKEND_CONCURRENCY })
    const storageTime = timeStorage(app.storage)
    try {
      const url = `${await app.listen({ host: '127.0.0.1', port: 0 })}/api/schema/pipeline/execute`
      const body = JSON.stringify({ schema: 'dada', input_text: 'Eine Blume auf der Wiese', output_configs: [BENCH_OUTPUT] })

      console.log()
      console.log('runstore pipeline bench')
      console.log(`  POST /api/schema/pipeline/execute {schema: dada, German input, output_configs: [${BENCH_OUTPUT}]}: builtin text providers,`)
      console.log(`  the builtin generator at 64x64 behind a timing wrapper; RUNS_DIR ${runsDir}`)

      const overhead: number[] = []
      const total: number[] = []
      const stored: number[] = []
      let storageCalls = 0
      const stageMs = new Map<string, number[]>()
      for (let i = 0; i < warmupRuns + runs; i++) {
        storageTime.take()
        const start = performance.now()
        const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
        const answer = await response.json() as { run_id: string, stages: Array<{ stage: string, duration_ms: number }> }
        const elapsed = performance.now() - start
        if (response.status !== 200) throw new Error(`execute answered ${response.status}: ${JSON.stringify(answer)}`)
        const generatorMs = timed.take(answer.run_id)
        const storage = storageTime.take()
        if (i < warmupRuns) continue
        total.push(elapsed)
        overhead.push(elapsed - generatorMs)
        stored.push(storage.ms)
        storageCalls = storage.calls
        for (const stage of answer.stages) stageMs.set(stage.stage, [...(stageMs.get(stage.stage) ?? []), stage.duration_ms])
      }
      const medianOverhead = median(overhead)
      console.log(`  one client, ${runs} runs after ${warmupRuns} warm-up:`)
      printNested([
        ['per run', 'median ms', 'p90 ms', 'min ms'],
        ['total (HTTP round trip)', ms(median(total)), ms(percentile(total, 0.9)), ms(Math.min(...total))],
        ['pipeline overhead (total - generator)', ms(medianOverhead), ms(percentile(overhead, 0.9)), ms(Math.min(...overhead))],
        [`  of which RunStorage calls (${storageCalls} a run, each fsync'd)`, ms(median(stored)), ms(percentile(stored, 0.9)), ms(Math.min(...stored))]
      ])
      console.log('  stage durations as recorded in metadata.json (generation includes storing the image):')
      printNested([['stage', 'median ms'], ...[...stageMs].map(([stage, values]) => [stage, ms(median(values))])])

      const load = await concurrentLoad(url, body, connections, seconds)
      console.log(`  ${connections} concurrent clients for ${seconds} s (a separate process, fetch with keep-alive), after 1 s warm-up:`)
      printNested([
        ['runs/s', 'runs', 'non-200', 'errors', 'p50 ms', 'p99 ms'],
        [load.runsPerSecond.toFixed(0), String(load.ok), String(load.non200), String(load.errors), ms(load.p50), ms(load.p99)]
      ])
      const pass = medianOverhead < TARGET_OVERHEAD_MS && load.non200 === 0 && load.errors === 0
      console.log(`  pipeline overhead ${ms(medianOverhead)} ms per run (${ms(medianOverhead - median(stored))} ms without the storage calls), target < ${TARGET_OVERHEAD_MS} ms: ${pass ? 'PASS' : 'FAIL'}`)
      return pass
    } finally {
      await app.close()
    }
  } finally {
    await rm(runsDir, { recursive: true, force: true })
    await rm(configsDir, { recursive: true, force: true })
  }
}

/**
 * Times every RunStorage call the pipeline makes (run creation, status, stage
 * records, transformed text, media), to tell the disk's part of the overhead
 * from the rest.
 */
function timeStorage (storage: RunStorage): { take: () => { ms: number, calls: number } } {
  let spent = 0
  let calls = 0
  for (const name of ['createRun', 'update', 'setStatus', 'recordStage', 'recordError', 'setTransformedText', 'addMedia'] as const) {
    const original = (storage[name] as (...args: unknown[]) => Promise<unknown>).bind(storage)
    Object.defineProperty(storage, name, {
      value: async (...args: unknown[]) => {
        const start = performance.now()
        try {
          return await original(...args)
        } finally {
          spent += performance.now() - start
          calls++
        }
      }
    })
  }
  return {
    take: () => {
      const taken = { ms: spent, calls }
      spent = 0
      calls = 0
      return taken
    }
  }
}

async function copyConfigs (dir: string): Promise<void> {
  for (const kind of ['outputs', 'pipelines']) {
    await mkdir(join(dir, kind))
    for (const file of await readdir(new URL(`${kind}/`, CONFIGS))) await copyFile(new URL(`${kind}/${file}`, CONFIGS), join(dir, kind, file))
  }
  await writeFile(join(dir, 'outputs', `${BENCH_OUTPUT}.json`), JSON.stringify({
    name: BENCH_OUTPUT,
    description: 'the builtin picture, small, timed (bench)',
    media_type: 'image',
    backend: BACKEND,
    params: { media_type: 'image' },
    defaults: { width: 64, height: 64 }
  }))
}

interface LoadResult {
  ok: number
  non200: number
  errors: number
  runsPerSecond: number
  p50: number
  p99: number
}

// Runs in its own process so the clients do not share the server's event loop.
const LOAD_SCRIPT = `
const { url, body, connections, seconds } = JSON.parse(process.argv[1])
async function phase (durationMs, record) {
  const end = performance.now() + durationMs
  await Promise.all(Array.from({ length: connections }, async () => {
    while (performance.now() < end) {
      const start = performance.now()
      try {
        const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
        await response.arrayBuffer()
        record(response.status, performance.now() - start)
      } catch { record(0, 0) }
    }
  }))
}
await phase(1000, () => {})
const result = { ok: 0, non200: 0, errors: 0, latencies: [] }
const start = performance.now()
await phase(seconds * 1000, (status, ms) => {
  if (status === 0) result.errors++
  else if (status === 200) { result.ok++; result.latencies.push(ms) }
  else result.non200++
})
result.seconds = (performance.now() - start) / 1000
process.stdout.write(JSON.stringify(result))
`

async function concurrentLoad (url: string, body: string, connections: number, seconds: number): Promise<LoadResult> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', LOAD_SCRIPT, JSON.stringify({ url, body, connections, seconds })], { stdio: ['ignore', 'pipe', 'inherit'] })
  let output = ''
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (chunk: string) => { output += chunk })
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject)
    child.once('exit', resolve)
  })
  if (code !== 0) throw new Error(`the load process exited with ${String(code)}`)
  const result = JSON.parse(output) as { ok: number, non200: number, errors: number, latencies: number[], seconds: number }
  return {
    ok: result.ok,
    non200: result.non200,
    errors: result.errors,
    runsPerSecond: result.ok / result.seconds,
    p50: percentile(result.latencies, 0.5),
    p99: percentile(result.latencies, 0.99)
  }
}

/** The pipeline's tables sit one level below its heading. */
function printNested (rows: string[][]): void {
  printTable(rows, '    ')
}
