import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { BaseLogger } from 'pino'
import { MEDIA_TYPES } from '../../schemas/media.js'
import { RUN_STATUSES } from '../../schemas/run.js'
import type { BackendRegistry } from '../backends/registry.js'
import type { BlobStore } from '../storage/blob/blob-store.js'
import type { RunIndex, RunIndexStats } from '../storage/index/run-index.js'
import type { RunEvents } from '../storage/run-events.js'
import { processRegistry } from './process-metrics.js'

/** The route label of a request that matched no route: raw URLs would make a series per run id. */
export const UNMATCHED_ROUTE = 'unmatched'

// From a media answer out of memory (below a millisecond) to an execute that waits for a GPU (minutes).
const REQUEST_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]
// A built-in picture takes milliseconds, a ComfyUI video up to COMFYUI_TIMEOUT_MS (10 minutes).
const GENERATION_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600]

export interface MetricsSources {
  events: RunEvents
  backends: BackendRegistry
  index: RunIndex
  blobs: BlobStore
  logger?: Pick<BaseLogger, 'warn'> | undefined
}

/**
 * The numbers an operator watches, in a registry of their own (an app, a
 * test, a bench each have one): requests, runs, stored media, generations,
 * the index and the disk. Counters hear of changes (the storage's events,
 * the queues' timings); gauges are read when scraped. It knows nothing of
 * HTTP: the metrics plugin hands it each answer.
 */
export class RunstoreMetrics {
  readonly registry = new Registry()
  readonly #requestDuration: Histogram<'method' | 'route' | 'status_code'>
  readonly #unsubscribe: Array<() => void> = []

  constructor (sources: MetricsSources) {
    const { events, backends, index, blobs } = sources
    const registers = [this.registry]
    // Started now, so that the first scrape has samples of the event loop's delay.
    processRegistry()

    this.#requestDuration = new Histogram({
      name: 'runstore_http_request_duration_seconds',
      help: 'Time from receiving a request to the end of its answer, by route pattern and status; its _count is the number of requests',
      labelNames: ['method', 'route', 'status_code'],
      buckets: REQUEST_BUCKETS,
      registers
    })

    const outputs = new Counter({ name: 'runstore_stored_outputs_total', help: 'Media files stored since start (uploads, downloads, generations), by media type', labelNames: ['media_type'], registers })
    const bytes = new Counter({ name: 'runstore_stored_output_bytes_total', help: 'Bytes of media stored since start, by media type', labelNames: ['media_type'], registers })
    for (const type of MEDIA_TYPES) { outputs.inc({ media_type: type }, 0); bytes.inc({ media_type: type }, 0) }
    this.#unsubscribe.push(events.subscribe('metrics', (event) => {
      if (event.type !== 'output.added') return
      outputs.inc({ media_type: event.output.type })
      bytes.inc({ media_type: event.output.type }, event.output.file_size_bytes)
    }))

    const generation = new Histogram({ name: 'runstore_generation_duration_seconds', help: 'Time one generation took on its backend, its wait for a place left out', labelNames: ['backend'], buckets: GENERATION_BUCKETS, registers })
    const queueWait = new Histogram({ name: 'runstore_generation_queue_wait_seconds', help: 'Time a generation waited for a place on its backend', labelNames: ['backend'], buckets: GENERATION_BUCKETS, registers })
    for (const { name } of backends.backends) {
      generation.zero({ backend: name })
      queueWait.zero({ backend: name })
      this.#unsubscribe.push(backends.queue(name).onGeneration(({ seconds, waitSeconds }) => {
        generation.observe({ backend: name }, seconds)
        queueWait.observe({ backend: name }, waitSeconds)
      }))
    }
    // Gauges are read when scraped; one whose source fails is left out of that scrape, never stale.
    const gauge = (name: string, help: string, labelNames: string[], read: (gauge: Gauge) => void | Promise<void>): void => {
      new Gauge({
        name,
        help,
        labelNames,
        registers,
        async collect () {
          // reset() leaves a gauge without labels at 0: a failed read must show nothing, not "0 bytes free".
          this.reset()
          this.remove({})
          try {
            await read(this)
          } catch (err) {
            sources.logger?.warn({ err, metric: name }, 'metrics: a source could not be read')
          }
        }
      })
    }
    gauge('runstore_generation_queue_depth', 'Generations waiting for a place on their backend (in line, or reserved by a run still in its text stages)', ['backend'], (g) => {
      for (const { name } of backends.backends) g.set({ backend: name }, backends.queue(name).waiting)
    })
    gauge('runstore_generations_running', 'Generations running on their backend now', ['backend'], (g) => {
      for (const { name } of backends.backends) g.set({ backend: name }, backends.queue(name).running)
    })

    // The three index gauges of a scrape are collected in one go (the registry starts them together): one read serves them.
    let reading: Promise<RunIndexStats> | null = null
    const indexStats = async (): Promise<RunIndexStats> => {
      reading ??= index.stats().finally(() => { reading = null })
      return await reading
    }
    gauge('runstore_runs', 'Runs by status, as the run index lists them', ['status'], async (g) => {
      const { byStatus } = await indexStats()
      for (const status of new Set([...RUN_STATUSES, ...Object.keys(byStatus)])) g.set({ status }, byStatus[status] ?? 0)
    })
    gauge('runstore_index_runs', 'Runs in the run index (GET /api/runs)', [], async (g) => { g.set((await indexStats()).runs) })
    gauge('runstore_index_complete', 'Whether the run index lists every stored run: 0 while it is built from the store', [], (g) => { g.set(index.progress().complete ? 1 : 0) })
    gauge('runstore_index_size_bytes', 'Room the run index takes on disk', [], async (g) => {
      const { sizeBytes } = await indexStats()
      if (sizeBytes !== null) g.set(sizeBytes)
    })

    gauge('runstore_storage_available_bytes', 'Bytes still free for runs on the volume of RUNS_DIR', [], async (g) => {
      const space = await blobs.space()
      if (space !== null) g.set(space.availableBytes)
    })
    gauge('runstore_storage_size_bytes', 'Size of the volume of RUNS_DIR', [], async (g) => {
      const space = await blobs.space()
      if (space !== null) g.set(space.totalBytes)
    })
  }

  /** One answer: `route` is the route's pattern (undefined when none matched), `milliseconds` from request to the end of the answer. */
  observeRequest (method: string, route: string | undefined, statusCode: number, milliseconds: number): void {
    this.#requestDuration.observe({ method, route: route ?? UNMATCHED_ROUTE, status_code: statusCode }, milliseconds / 1000)
  }

  get contentType (): string {
    return this.registry.contentType
  }

  /** The text a Prometheus server scrapes: these metrics, then the process's own (CPU, memory, event loop, GC). */
  async exposition (): Promise<string> {
    return await this.registry.metrics() + await processRegistry().metrics()
  }

  /** Stops hearing of runs and generations. */
  close (): void {
    for (const unsubscribe of this.#unsubscribe.splice(0)) unsubscribe()
  }
}
