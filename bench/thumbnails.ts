// Thumbnails: the first request of one (made with sharp and written to the
// cache) and a cached one, against serving an original of the same size
// through the media route in the same run. Runs in `npm run bench`, or alone:
// `npm run build && node dist/bench/thumbnails.js`.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildApp } from '../app.js'
import { loadConfig } from '../config.js'
import { paintPicture } from '../services/backends/builtin/picture.js'
import { measureLoad, type MeasuredLoad } from './load.js'
import { loadSettings, median, ms, percentile, positiveInteger, printTable } from './report.js'

const WIDTH = 320
const ACCEPT = 'image/avif,image/webp,image/apng,*/*;q=0.8' // a browser's <img>
// Under load a cached thumbnail must be served at least this share of the rate of an original of its size.
const TARGET_CACHED_VS_ORIGINAL = 0.5

/** Prints the thumbnail rows; true when every answer was right and the target was met. */
export async function benchThumbnails (): Promise<boolean> {
  const repetitions = positiveInteger('BENCH_REPETITIONS', 20)
  const warmup = 2
  const { connections, seconds, warmupSeconds } = loadSettings()
  const runsDir = await mkdtemp(join(tmpdir(), 'runstore-bench-thumbnails-'))
  try {
    const app = await buildApp(loadConfig({ RUNS_DIR: runsDir, CONFIGS_DIR: fileURLToPath(new URL('../../configs', import.meta.url)), LOG_LEVEL: 'warn' }))
    try {
      const base = await app.listen({ host: '127.0.0.1', port: 0 })
      // One picture of the builtin generator, stored in a run per repetition: each run makes its own thumbnail.
      const picture = paintPicture('Eine Blume auf der Wiese', 7, 1024, 768)
      const runIds: string[] = []
      for (let i = 0; i < warmup + repetitions; i++) {
        const run = await app.storage.createRun({ schema: 'bench', execution_mode: 'bench', input_text: `thumbnail ${i}` })
        await app.storage.addMedia(run.run_id, picture, { config: 'bench', backend: 'bench', media_type: 'image' })
        runIds.push(run.run_id)
      }
      const thumbnailUrl = (runId: string): string => `${base}/api/media/image/${runId}/0?width=${WIDTH}`

      // The reference: a thumbnail's own bytes stored as the original of another run, served by the media route.
      const sample = await get(thumbnailUrl(runIds[0]!))
      const sameSize = await app.storage.createRun({ schema: 'bench', execution_mode: 'bench', input_text: 'reference' })
      await app.storage.addMedia(sameSize.run_id, sample.bytes, { config: 'bench', backend: 'bench', media_type: 'image' })
      const referenceUrl = `${base}/api/media/image/${sameSize.run_id}/0`
      const originalUrl = `${base}/api/media/image/${runIds[0]!}/0`

      const problems: string[] = []
      const times = { first: [] as number[], cached: [] as number[], reference: [] as number[], original: [] as number[] }
      for (const [i, runId] of runIds.entries()) {
        const made = app.thumbnails.made
        const first = await get(thumbnailUrl(runId))
        const cached = await get(thumbnailUrl(runId))
        const reference = await get(referenceUrl)
        const original = await get(originalUrl)
        if (i === 0) continue // its first request was the sample's
        if (app.thumbnails.made !== made + 1) problems.push(`run ${runId}: ${app.thumbnails.made - made} thumbnails made for a first and a cached request, expected 1`)
        if (first.type !== 'image/webp' || !first.bytes.equals(cached.bytes) || !cached.bytes.equals(sample.bytes)) problems.push(`run ${runId}: the thumbnail answers differ (${first.type}, ${first.bytes.length} and ${cached.bytes.length} bytes)`)
        if (!reference.bytes.equals(sample.bytes) || original.bytes.length !== picture.length) problems.push('a reference answered other bytes')
        if (i < warmup) continue
        times.first.push(first.ms)
        times.cached.push(cached.ms)
        times.reference.push(reference.ms)
        times.original.push(original.ms)
      }

      console.log()
      console.log('runstore thumbnail bench')
      console.log(`  a ${picture.length}-byte PNG (1024x768, builtin generator) in ${repetitions} runs; GET ?width=${WIDTH} with a browser's Accept: a ${sample.bytes.length}-byte WebP`)
      console.log(`  reference: the same ${sample.bytes.length} bytes stored as an original and served by the media route (memory cache); RUNS_DIR ${runsDir}`)
      console.log(`  one client over HTTP on 127.0.0.1, one request at a time, median of ${repetitions} after ${warmup} warm-up; each run's first request makes its thumbnail (sharp, cache write with fsync)`)
      const sequentialReference = median(times.reference)
      const row = (what: string, values: number[]): string[] => [what, ms(median(values)), ms(percentile(values, 0.9)), ms(Math.min(...values)), `${(median(values) / sequentialReference).toFixed(2)}x`]
      printTable([
        ['request', 'median ms', 'p90 ms', 'min ms', 'vs reference'],
        row(`original of the same size (${sample.bytes.length} B), reference`, times.reference),
        row('thumbnail, cached', times.cached),
        row('thumbnail, first request (made)', times.first),
        row(`the original it is made from (${picture.length} B)`, times.original)
      ])

      const job = { connections, warmupSeconds, durationSeconds: seconds, bodyBytes: sample.bytes.length, headers: { accept: ACCEPT } }
      const rounds: [MeasuredLoad[], MeasuredLoad[]] = [[], []]
      for (let round = 0; round < positiveInteger('BENCH_ROUNDS', 1); round++) {
        // Every other round in reverse, so a drifting machine favours neither.
        for (const which of round % 2 === 0 ? [0, 1] as const : [1, 0] as const) {
          rounds[which].push(await measureLoad({ ...job, url: which === 0 ? referenceUrl : thumbnailUrl(runIds[1]!) }))
        }
      }
      const [reference, thumbnail] = rounds.map(medianRound) as [MeasuredLoad, MeasuredLoad]
      const ratio = thumbnail.requestsPerSecond / reference.requestsPerSecond
      for (const load of rounds.flat()) for (const problem of load.problems) problems.push(`${load.url}: ${problem}`)
      const pass = problems.length === 0 && ratio >= TARGET_CACHED_VS_ORIGINAL
      console.log(`  under load: ${connections} connections (autocannon in a child process), ${warmupSeconds} s warm-up then ${seconds} s each, ${rounds[0].length} round(s), the median shown:`)
      printTable([
        ['served', 'req/s', 'p50 ms', 'p99 ms', 'cpu us/req', 'vs reference', 'target', ''],
        ['original of the same size, reference', ...loadCells(reference), '1.00x', '', ''],
        ['thumbnail, cached', ...loadCells(thumbnail), `${ratio.toFixed(2)}x`, `>= ${TARGET_CACHED_VS_ORIGINAL}x`, pass ? 'PASS' : 'FAIL']
      ])
      for (const problem of problems) console.log(`  FAILURE ${problem}`)
      return pass
    } finally {
      await app.close()
    }
  } finally {
    await rm(runsDir, { recursive: true, force: true })
  }
}

function medianRound (rounds: MeasuredLoad[]): MeasuredLoad {
  return [...rounds].sort((a, b) => a.requestsPerSecond - b.requestsPerSecond)[rounds.length >> 1]!
}

function loadCells (load: MeasuredLoad): string[] {
  return [load.requestsPerSecond.toFixed(0), String(load.latencyP50Ms), String(load.latencyP99Ms), load.serverCpuMicrosPerRequest.toFixed(1)]
}

async function get (url: string): Promise<{ ms: number, type: string | null, bytes: Buffer }> {
  const start = performance.now()
  const response = await fetch(url, { headers: { accept: ACCEPT } })
  const bytes = Buffer.from(await response.arrayBuffer())
  const elapsed = performance.now() - start
  if (response.status !== 200) throw new Error(`${url} answered ${response.status}: ${bytes.toString('utf8', 0, 200)}`)
  return { ms: elapsed, type: response.headers.get('content-type'), bytes }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  benchThumbnails().then((ok) => {
    console.log(ok ? 'RESULT: PASS' : 'RESULT: FAIL')
    process.exitCode = ok ? 0 : 1
  }, (err: unknown) => {
    console.error(err)
    process.exitCode = 1
  })
}
