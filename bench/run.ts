// npm run bench: media delivery throughput against @fastify/static, and the
// cost of storing an image against a bare write + fsync, each measured against
// its reference in the same run. Settings: see bench/README.md.
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyStatic from '@fastify/static'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { cpus, loadavg, tmpdir } from 'node:os'
import { mkdtemp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildApp } from '../app.js'
import { loadConfig } from '../config.js'
import { probeMediaFile } from '../services/storage/probe.js'
import type { RunStorage } from '../services/storage/run-storage.js'
import { measureLoad, type MeasuredLoad } from './load.js'
import { servedImages } from './png.js'
import { benchPipeline } from './pipeline.js'
import { benchThumbnails } from './thumbnails.js'
import { benchS3Media } from './s3-media.js'
import { benchIndexScaleFromEnv } from './index-scale.js'
import { loadSettings, median, ms, positiveInteger, printTable } from './report.js'
import { writeFileSynced } from '../services/storage/blob/durable-fs.js'

const LOG_LEVEL = 'warn'
const { connections: CONNECTIONS, seconds: SECONDS, warmupSeconds: WARMUP_SECONDS } = loadSettings()
const ROUNDS = positiveInteger('BENCH_ROUNDS', 1)
const REPETITIONS = positiveInteger('BENCH_REPETITIONS', 20)
const STORE_WARMUP_REPETITIONS = 2

interface Subject {
  label: string
  bytes: Buffer
  /** the media route must reach this multiple of @fastify/static's req/s */
  target: number
}

interface Closable { close: () => Promise<unknown> }

const SERVERS = ['media', 'static', 'ceiling'] as const
type ServerName = typeof SERVERS[number]

/** Several rounds of one server as one row: the median round, its problems and all rounds' req/s. */
interface Summary extends MeasuredLoad {
  roundsPerSecond: number[]
}

async function main (): Promise<boolean> {
  const runsDir = await mkdtemp(join(tmpdir(), 'runstore-bench-'))
  const closables: Closable[] = []
  try {
    const images = servedImages()
    const subjects: Subject[] = [{ ...images.small, target: 5 }, { ...images.large, target: 3 }]

    const config = loadConfig({
      RUNS_DIR: runsDir,
      CONFIGS_DIR: fileURLToPath(new URL('../../configs', import.meta.url)),
      LOG_LEVEL,
      ALLOWED_FETCH_HOSTS: '127.0.0.1'
    })
    const app = await buildApp(config)
    closables.push(app)
    const appUrl = await listen(app)
    const { storage } = app

    const reference = Fastify({ logger: { level: LOG_LEVEL } })
    closables.push(reference)
    await reference.register(fastifyStatic, { root: runsDir, prefix: '/static/' })
    const referenceUrl = await listen(reference)

    // What the machine and the load generator can do at best: the bytes from memory, nothing else.
    const ceiling = createServer((request, response) => {
      const bytes = subjects.find((s) => request.url === `/${s.bytes.length}`)?.bytes
      if (bytes === undefined) return response.writeHead(404).end()
      response.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': bytes.length }).end(bytes)
    })
    closables.push(serverClosable(ceiling))
    const ceilingUrl = await listenNode(ceiling)

    console.log('runstore media bench')
    console.log(`  node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model ?? 'unknown'}), load average ${loadAverage()} at start, RUNS_DIR ${runsDir}`)
    console.log(`  load: autocannon in a child process (own event loop, own core), ${CONNECTIONS} connections, pipelining 1, ${WARMUP_SECONDS} s warm-up then ${SECONDS} s per measurement${ROUNDS > 1 ? `, ${ROUNDS} rounds (median shown)` : ''}`)
    console.log('        its per-answer body string is replaced by a byte count (see bench/README.md); every body must be exactly the file size')
    console.log(`  servers: all in this process, one under load at a time; both Fastify instances log at level '${LOG_LEVEL}'`)
    console.log(`  media cache: MEDIA_CACHE_BYTES ${config.MEDIA_CACHE_BYTES}, MEDIA_CACHE_MAX_FILE_BYTES ${config.MEDIA_CACHE_MAX_FILE_BYTES}`)
    console.log(`  reference: fastify ${reference.version} + @fastify/static with its defaults, root = RUNS_DIR, GET /static/<run_id>/output_image.png`)
    console.log('  ceiling: bare node:http, res.end(buffer) from memory (informational: the most this client measures)')
    console.log('  cpu us/req: CPU time (user + system) of this process, where the servers run, per answer during the measurement')
    console.log()

    let ok = true
    const rows: string[][] = [['file', 'server', 'req/s', 'MB/s', 'p50 ms', 'p99 ms', 'cpu us/req', 'answers', 'vs static', 'target', '']]
    for (const subject of subjects) {
      const run = await storage.createRun({ schema: 'bench', execution_mode: 'bench', input_text: `bench ${subject.label}` })
      const output = await storage.addMedia(run.run_id, subject.bytes, { config: 'bench', backend: 'bench', media_type: 'image' })
      console.log(`${subject.label}: PNG ${output.width}x${output.height}, ${subject.bytes.length} bytes, run ${run.run_id}/${output.filename}`)

      const urls = {
        media: `${appUrl}/api/media/image/${run.run_id}`,
        static: `${referenceUrl}/static/${run.run_id}/${output.filename}`,
        ceiling: `${ceilingUrl}/${subject.bytes.length}`
      }
      for (const url of Object.values(urls)) await assertServes(url, subject.bytes)

      const job = { connections: CONNECTIONS, warmupSeconds: WARMUP_SECONDS, durationSeconds: SECONDS, bodyBytes: subject.bytes.length }
      const rounds: Record<ServerName, MeasuredLoad[]> = { media: [], static: [], ceiling: [] }
      for (let round = 0; round < ROUNDS; round++) {
        // Every other round in reverse, so a drifting machine favours no server.
        for (const server of round % 2 === 0 ? SERVERS : [...SERVERS].reverse()) {
          rounds[server].push(await measureLoad({ ...job, url: urls[server] }))
        }
      }
      const media = summarise(rounds.media)
      const stat = summarise(rounds.static)
      const bare = summarise(rounds.ceiling)

      const ratio = media.requestsPerSecond / stat.requestsPerSecond
      const correct = [media, stat, bare].every((r) => r.problems.length === 0)
      const pass = correct && ratio >= subject.target
      ok &&= pass
      rows.push(row(subject.label, 'media route', media, `${ratio.toFixed(2)}x`, `>= ${subject.target}x`, pass ? 'PASS' : 'FAIL'))
      rows.push(row('', '@fastify/static', stat, '1.00x', '', ''))
      rows.push(row('', 'ceiling', bare, `${(bare.requestsPerSecond / stat.requestsPerSecond).toFixed(2)}x`, '', ''))
      for (const r of [media, stat, bare]) for (const problem of r.problems) console.log(`  FAILURE ${r.url}: ${problem}`)
    }
    console.log()
    printTable(rows)
    console.log()

    const large = subjects[1]!.bytes
    const origin = createServer((_request, response) => {
      response.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': large.length }).end(large)
    })
    closables.push(serverClosable(origin))
    const originUrl = `${await listenNode(origin)}/image.png`
    await timeStores(storage, runsDir, large, originUrl, config.MAX_IMAGE_PIXELS)
    ok = await benchPipeline() && ok
    ok = await benchThumbnails() && ok
    ok = await benchS3Media() && ok
    ok = await benchIndexScaleFromEnv() && ok

    console.log()
    console.log(`load average ${loadAverage()} at the end (a busy machine blurs every number above; the ratios less so)`)
    console.log(ok ? 'RESULT: PASS' : 'RESULT: FAIL')
    return ok
  } finally {
    for (const closable of closables.reverse()) await closable.close()
    await rm(runsDir, { recursive: true, force: true })
  }
}

/**
 * Median time to store one image through RunStorage.addMedia (write, fsync,
 * sha256, probe with its structure walk, link, metadata.json written
 * durably) against the bare minimum that keeps the same bytes safe: write +
 * fsync of one file in the same folder. The measurements alternate, so both
 * see the same disk. The probe is also timed alone, on the reference file.
 */
async function timeStores (storage: RunStorage, runsDir: string, bytes: Buffer, url: string, maxImagePixels: number): Promise<void> {
  const run = await storage.createRun({ schema: 'bench', execution_mode: 'bench', input_text: 'bench store' })
  // The reference writes into the same run folder of the local blob store.
  const dir = join(runsDir, run.run_id)
  const options = { config: 'bench', backend: 'bench', media_type: 'image' } as const
  const times = { buffer: [] as number[], url: [] as number[], write: [] as number[], fetchWrite: [] as number[], probe: [] as number[] }
  let n = 0
  for (let i = 0; i < STORE_WARMUP_REPETITIONS + REPETITIONS; i++) {
    const reference = join(dir, `reference-${n++}.png`)
    const sample = {
      buffer: await timed(async () => await storage.addMedia(run.run_id, bytes, options)),
      write: await timed(async () => { await writeFileSynced(reference, bytes) }),
      probe: await timed(async () => await probeMediaFile(reference, { maxImagePixels })),
      url: await timed(async () => await storage.addMedia(run.run_id, { kind: 'url', url }, options)),
      fetchWrite: await timed(async () => {
        const response = await fetch(url)
        await writeFileSynced(join(dir, `reference-${n++}.png`), Buffer.from(await response.arrayBuffer()))
      })
    }
    if (i < STORE_WARMUP_REPETITIONS) continue
    for (const key of Object.keys(times) as Array<keyof typeof times>) times[key].push(sample[key])
  }

  const write = median(times.write)
  const fetchWrite = median(times.fetchWrite)
  console.log(`storing ${bytes.length} bytes (PNG), median of ${REPETITIONS} after ${STORE_WARMUP_REPETITIONS} warm-up, same folder, alternating:`)
  printTable([
    ['what', 'median ms', 'min ms', 'max ms', 'vs write+fsync', 'vs fetch+write+fsync'],
    ['fs writeFile + fsync (reference)', ms(write), ms(Math.min(...times.write)), ms(Math.max(...times.write)), '1.00x', ''],
    ['fetch(loopback) + writeFile + fsync', ms(fetchWrite), ms(Math.min(...times.fetchWrite)), ms(Math.max(...times.fetchWrite)), `${(fetchWrite / write).toFixed(2)}x`, '1.00x'],
    ['storage.addMedia(run, Buffer)', ms(median(times.buffer)), ms(Math.min(...times.buffer)), ms(Math.max(...times.buffer)), `${(median(times.buffer) / write).toFixed(2)}x`, ''],
    ['probeMediaFile alone (type, size, structure walk)', ms(median(times.probe)), ms(Math.min(...times.probe)), ms(Math.max(...times.probe)), `${(median(times.probe) / write).toFixed(2)}x`, ''],
    ['storage.addMedia(run, {kind: url}) loopback', ms(median(times.url)), ms(Math.min(...times.url)), ms(Math.max(...times.url)), `${(median(times.url) / write).toFixed(2)}x`, `${(median(times.url) / fetchWrite).toFixed(2)}x`]
  ])
}

/** One GET must answer 200 with exactly these bytes before its server is measured. */
async function assertServes (url: string, bytes: Buffer): Promise<void> {
  const response = await fetch(url)
  const body = Buffer.from(await response.arrayBuffer())
  if (response.status !== 200 || !body.equals(bytes)) {
    throw new Error(`${url} answered ${response.status} with ${body.length} bytes, expected 200 with the ${bytes.length} stored bytes`)
  }
}

async function timed (fn: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint()
  await fn()
  return Number(process.hrtime.bigint() - start) / 1e6
}

function summarise (rounds: MeasuredLoad[]): Summary {
  const byRate = [...rounds].sort((a, b) => a.requestsPerSecond - b.requestsPerSecond)
  const middle = byRate[byRate.length >> 1]!
  return {
    ...middle,
    serverCpuMicrosPerRequest: median(rounds.map((r) => r.serverCpuMicrosPerRequest)),
    problems: rounds.flatMap((r) => r.problems),
    roundsPerSecond: rounds.map((r) => r.requestsPerSecond)
  }
}

function row (file: string, server: string, r: Summary, ratio: string, target: string, verdict: string): string[] {
  const answers = Object.entries(r.statusCodes).map(([code, count]) => `${count}x${code}`).join(' ')
  const rate = r.roundsPerSecond.length > 1
    ? `${r.requestsPerSecond.toFixed(0)} (${r.roundsPerSecond.map((x) => x.toFixed(0)).join('/')})`
    : r.requestsPerSecond.toFixed(0)
  return [
    file, server, rate, r.megabytesPerSecond.toFixed(0), String(r.latencyP50Ms), String(r.latencyP99Ms),
    r.serverCpuMicrosPerRequest.toFixed(1), answers, ratio, target, verdict
  ]
}

function loadAverage (): string {
  return loadavg().map((l) => l.toFixed(2)).join(' ')
}

async function listen (app: FastifyInstance): Promise<string> {
  return await app.listen({ host: '127.0.0.1', port: 0 })
}

async function listenNode (server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

function serverClosable (server: Server): Closable {
  return {
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

main().then((ok) => {
  process.exitCode = ok ? 0 : 1
}, (err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
