// The run index at 100,000 and 1,000,000 runs: how long a start takes (cold,
// warm, after a kill -9), how long the background build or catch-up takes, and
// what the listing queries cost; then the growth from the smaller store to the
// larger one. Settings: BENCH_INDEX_RUNS (sizes, default 100000,1000000),
// BENCH_INDEX_DIR (where the stores are made; default the system's temp folder).
import { spawn } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadConfig, type Config } from '../config.js'
import { createRunstore } from '../runstore.js'
import type { RunMetadata } from '../schemas/run.js'
import type { RunListFilters, RunListPaging } from '../services/storage/index/run-index.js'
import { uuidv7 } from '../services/storage/run-id.js'
import { median, ms, printTable } from './report.js'

const WORDS = ['Eine', 'Blume', 'auf', 'der', 'Wiese', 'ein', 'Haus', 'am', 'Meer', 'Katze', 'mit', 'Hut', 'roter', 'Himmel', 'Baum', 'im', 'Wald', 'Sonne', 'über', 'den', 'Bergen', 'Vogel', 'fliegt', 'großer', 'Fisch', 'tanzt', 'Mond', 'Stadt', 'bunte', 'Straße']
const SCHEMAS = ['dada', 'bauhaus', 'surreal', 'klimt', 'pop']
const QUERY_REPETITIONS = 15
/** A filtered page must stay under this at every size. */
const PAGE_TARGET_MS = 10
/** A start may take this many times longer at the larger size (flat would be 1). */
const START_GROWTH_TARGET = 3

interface SizeResult {
  runs: number
  coldStartMs: number
  buildMs: number
  warmStartMs: number
  warmCatchUpMs: number
  crashStartMs: number
  crashCatchUpMs: number
  journaled: number
  queries: Map<string, number>
}

const QUERIES: Array<[string, RunListFilters, RunListPaging?]> = [
  ['newest page', {}],
  ['oldest page (order=asc)', {}, { order: 'asc' }],
  ['q common word "blume"', { q: 'blume' }],
  ['q two letters "er"', { q: 'er' }],
  ['q rare word', { q: 'zebrastreifen' }],
  ['media_type=audio', { media_type: 'audio' }],
  ['media_type=image&backend=openai', { media_type: 'image', backend: 'openai' }],
  ['schema + a week', { schema: 'bauhaus', from: '2026-03-01', to: '2026-03-08' }],
  ['user_id', { user_id: 'U017' }],
  ['status=failed', { status: 'failed' }],
  ['user_id + q', { user_id: 'U017', q: 'katze' }]
]

export async function benchIndexScale (sizes: number[], baseDir: string): Promise<boolean> {
  console.log(`\nrun index at ${sizes.map((n) => n.toLocaleString('en')).join(' and ')} runs (stores made in ${baseDir})`)
  const results: SizeResult[] = []
  for (const runs of sizes) {
    const dir = await mkdtemp(join(baseDir, `runstore-index-${runs}-`))
    try {
      results.push(await measureSize(runs, dir))
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }
  return report(results)
}

async function measureSize (runs: number, dir: string): Promise<SizeResult> {
  const runsDir = join(dir, 'runs')
  const made = Date.now()
  await makeRuns(runsDir, runs)
  console.log(`  ${runs.toLocaleString('en')} runs made in ${((Date.now() - made) / 1000).toFixed(0)} s`)
  const config = loadConfig({ RUNS_DIR: runsDir, CONFIGS_DIR: fileURLToPath(new URL('../../configs', import.meta.url)), LOG_LEVEL: 'warn' })

  const cold = await timedStart(config)
  const coldStartMs = cold.startMs
  const buildMs = cold.startupMs
  await cold.close()
  const warm = await timedStart(config)
  const queries = new Map<string, number>()
  for (const [label, filters, paging] of QUERIES) {
    const times: number[] = []
    for (let i = 0; i < QUERY_REPETITIONS; i++) {
      const started = performance.now()
      const page = await warm.runstore.index.list(filters, { limit: 50, ...paging })
      times.push(performance.now() - started)
      if (page.runs.length === 0 && !label.includes(' + q') && label !== 'q rare word') throw new Error(`${label}: no runs`)
    }
    queries.set(label, median(times))
  }
  await warm.close()

  await crashWhileWriting(runsDir)
  const crashed = await timedStart(config)
  await crashed.close()
  return {
    runs,
    coldStartMs,
    buildMs,
    warmStartMs: warm.startMs,
    warmCatchUpMs: warm.startupMs,
    crashStartMs: crashed.startMs,
    crashCatchUpMs: crashed.startupMs,
    journaled: crashed.journaled,
    queries
  }
}

async function timedStart (config: Config): Promise<{ runstore: Awaited<ReturnType<typeof createRunstore>>, startMs: number, startupMs: number, journaled: number, close: () => Promise<void> }> {
  const started = performance.now()
  const runstore = await createRunstore(config)
  const startMs = performance.now() - started
  const report = await runstore.startup
  return { runstore, startMs, startupMs: performance.now() - started, journaled: report.index.journaled, close: async () => { await runstore.close() } }
}

/** Runs in the service's own format, written straight to disk (the service would take hours to make a million). */
async function makeRuns (runsDir: string, count: number): Promise<void> {
  await mkdir(runsDir, { recursive: true })
  const start = Date.UTC(2026, 0, 1)
  const span = 365 * 24 * 3600 * 1000
  // Synchronous writes: small files go several times faster without a thread-pool hop each.
  for (let i = 0; i < count; i++) {
    {
      const ms = start + Math.floor(span * i / count)
      const runId = uuidv7(ms)
      const words = Array.from({ length: 5 + (i % 7) }, (_, k) => WORDS[(i * 7 + k * 13 + (i >> 3)) % WORDS.length]!)
      if (i === Math.floor(count / 3)) words.push('Zebrastreifen')
      const type = i % 10 === 0 ? 'audio' : i % 10 === 1 ? 'video' : 'image'
      const backend = type === 'audio' ? 'replicate' : i % 3 === 0 ? 'openai' : 'comfyui'
      const timestamp = new Date(ms).toISOString()
      const metadata: RunMetadata = {
        metadata_version: 1,
        run_id: runId,
        user_id: `U${String(i % 200).padStart(3, '0')}`,
        timestamp,
        updated_at: timestamp,
        status: i % 20 === 0 ? 'failed' : i % 20 === 1 ? 'blocked' : 'completed',
        schema: SCHEMAS[i % SCHEMAS.length]!,
        execution_mode: 'eco',
        safety_level: 'kids',
        input_text: words.join(' '),
        transformed_text: `${words.reverse().join(' ')}, im Stil`,
        stages: [],
        outputs: [{
          index: 0, type, filename: `output_${type}.bin`, backend, config: `${backend}_config`, file_size_bytes: 1000,
          format: 'bin', mime_type: 'application/octet-stream', width: null, height: null, duration_seconds: null,
          sha256: '0'.repeat(64), created_at: timestamp, source: { kind: backend }
        }],
        errors: []
      } as unknown as RunMetadata
      mkdirSync(join(runsDir, runId))
      writeFileSync(join(runsDir, runId, 'input_text.txt'), metadata.input_text)
      writeFileSync(join(runsDir, runId, 'metadata.json'), JSON.stringify(metadata, null, 2) + '\n')
    }
    if (i % 10_000 === 9_999) await new Promise((resolve) => setImmediate(resolve))
  }
}

/** A child process serves the store, writes runs from 20 clients and is killed (SIGKILL) in the middle of it. */
async function crashWhileWriting (runsDir: string): Promise<void> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), 'crash-child', runsDir], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => { child.kill('SIGKILL') })
    child.once('exit', () => { resolve() })
    child.once('error', reject)
  })
}

async function crashChild (runsDir: string): Promise<void> {
  const runstore = await createRunstore(loadConfig({ RUNS_DIR: runsDir, CONFIGS_DIR: fileURLToPath(new URL('../../configs', import.meta.url)), LOG_LEVEL: 'warn' }))
  let writes = 0
  const client = async (): Promise<void> => {
    for (;;) {
      const run = await runstore.storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'Absturz' })
      await runstore.storage.setStatus(run.run_id, 'running')
      if (++writes === 200) process.send?.('writing')
    }
  }
  for (let i = 0; i < 20; i++) void client()
}

function report (results: SizeResult[]): boolean {
  let ok = true
  const sec = (value: number): string => (value / 1000).toFixed(2)
  const rows: string[][] = [['', ...results.map((r) => `${r.runs.toLocaleString('en')} runs`), ...(results.length > 1 ? ['growth'] : [])]]
  const growth = (pick: (r: SizeResult) => number): string[] => results.length > 1 ? [`${(pick(results.at(-1)!) / pick(results[0]!)).toFixed(2)}×`] : []
  const row = (label: string, pick: (r: SizeResult) => number, format: (v: number) => string): void => { rows.push([label, ...results.map((r) => format(pick(r))), ...growth(pick)]) }
  row('cold start, no index file (s)', (r) => r.coldStartMs, sec)
  row('  its background build (s)', (r) => r.buildMs, sec)
  row('warm start (s)', (r) => r.warmStartMs, sec)
  row('  its background catch-up (s)', (r) => r.warmCatchUpMs, sec)
  row('start after kill -9 (s)', (r) => r.crashStartMs, sec)
  row('  its background catch-up (s)', (r) => r.crashCatchUpMs, sec)
  row('  runs read from the journal', (r) => r.journaled, String)
  for (const [label] of QUERIES) row(`page of 50: ${label} (ms)`, (r) => r.queries.get(label)!, ms)
  printTable(rows)
  const last = results.at(-1)!
  for (const [label, time] of last.queries) {
    if (time > PAGE_TARGET_MS) { ok = false; console.log(`  MISSED: ${label} took ${ms(time)} ms at ${last.runs} runs (target ${PAGE_TARGET_MS} ms)`) }
  }
  if (results.length > 1) {
    for (const [label, pick] of [['cold start', (r: SizeResult) => r.coldStartMs], ['warm start', (r: SizeResult) => r.warmStartMs], ['start after kill -9', (r: SizeResult) => r.crashStartMs]] as const) {
      // A start under a second is flat whatever its ratio: the noise of opening files.
      const ratio = pick(last) / pick(results[0]!)
      if (pick(last) > 1000 && ratio > START_GROWTH_TARGET) { ok = false; console.log(`  MISSED: ${label} grew ${ratio.toFixed(2)}× (target ${START_GROWTH_TARGET}×)`) }
    }
  }
  return ok
}

/** The index bench with its settings from the environment: what `npm run bench` runs last. */
export async function benchIndexScaleFromEnv (): Promise<boolean> {
  const sizes = (process.env.BENCH_INDEX_RUNS ?? '100000,1000000').split(',').map(Number)
  return await benchIndexScale(sizes, process.env.BENCH_INDEX_DIR ?? tmpdir())
}

if (process.argv[2] === 'crash-child') {
  await crashChild(process.argv[3]!)
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.exitCode = await benchIndexScaleFromEnv() ? 0 : 1
}
