// Child process entry of measureLoad(): one job in over IPC, one result out.
import autocannon from 'autocannon'
import { createRequire } from 'node:module'
import type { LoadJob, LoadMessage, LoadResult } from './load.js'

interface PendingResponse { bodyBytes?: number }
interface ResponseQueue {
  peek: () => PendingResponse | undefined
  addBody: (chunk: Buffer) => void
  terminateRequest: () => PendingResponse | undefined
}

// autocannon appends every response body to a JS string (`body += chunk`).
// Decoding binary as UTF-8 caps it at about 60 MB/s here (850 req/s for a
// 64 KiB PNG, 59 for 1 MiB, against any server), so it would measure itself.
// Counting the body bytes instead keeps an exact per-answer check at no cost.
const bodySizes = { min: Number.POSITIVE_INFINITY, max: 0, wrong: 0, expected: 0 }
const queue = (createRequire(import.meta.url)('autocannon/lib/pipelinedRequestsQueue.js') as { prototype: ResponseQueue }).prototype
const terminateRequest = queue.terminateRequest
queue.addBody = function (this: ResponseQueue, chunk: Buffer) {
  const pending = this.peek()
  if (pending !== undefined) pending.bodyBytes = (pending.bodyBytes ?? 0) + chunk.length
}
queue.terminateRequest = function (this: ResponseQueue) {
  const done = terminateRequest.call(this)
  if (done !== undefined) {
    const bytes = done.bodyBytes ?? 0
    if (bytes < bodySizes.min) bodySizes.min = bytes
    if (bytes > bodySizes.max) bodySizes.max = bytes
    if (bytes !== bodySizes.expected) bodySizes.wrong++
  }
  return done
}

async function run (job: LoadJob): Promise<LoadResult> {
  bodySizes.expected = job.bodyBytes
  const options = { url: job.url, connections: job.connections, pipelining: 1, timeout: 10, headers: job.headers ?? {} }
  // Warm-up: connections, JIT and the server's caches; its numbers are discarded
  // but its failures are not.
  const warmup = await autocannon({ ...options, duration: job.warmupSeconds })

  tell({ phase: 'measuring' })
  const result = await autocannon({ ...options, duration: job.durationSeconds })

  const statusCodes: Record<string, number> = {}
  for (const [code, { count }] of Object.entries(result.statusCodeStats)) statusCodes[code] = count
  const problems: string[] = []
  for (const [phase, r] of [['warm-up', warmup], ['measurement', result]] as const) {
    if (r.non2xx > 0) problems.push(`${phase}: ${r.non2xx} non-2xx answers (${JSON.stringify(r.statusCodeStats)})`)
    if (r.errors > 0) problems.push(`${phase}: ${r.errors} connection errors`)
    if (r.timeouts > 0) problems.push(`${phase}: ${r.timeouts} timeouts`)
  }
  if (result.requests.total === 0) problems.push('no answer at all')
  if (bodySizes.wrong > 0) {
    problems.push(`${bodySizes.wrong} answers whose body was not ${job.bodyBytes} bytes (${bodySizes.min}..${bodySizes.max})`)
  }

  return {
    url: job.url,
    requests: result.requests.total,
    seconds: result.duration,
    requestsPerSecond: result.requests.total / result.duration,
    megabytesPerSecond: result.throughput.total / result.duration / 1e6,
    latencyP50Ms: result.latency.p50,
    latencyP99Ms: result.latency.p99,
    statusCodes,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    minBodyBytes: Number.isFinite(bodySizes.min) ? bodySizes.min : 0,
    maxBodyBytes: bodySizes.max,
    problems
  }
}

function tell (message: LoadMessage, then: () => void = () => {}): void {
  process.send!(message, then)
}

process.once('message', (job) => {
  run(job as LoadJob).then((result) => {
    tell({ phase: 'done', result }, () => process.disconnect())
  }, (err: unknown) => {
    console.error(err)
    process.exitCode = 1
    process.disconnect()
  })
})
