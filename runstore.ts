import { availableParallelism } from 'node:os'
import { join, relative, resolve, sep } from 'node:path'
import type { BaseLogger } from 'pino'
import { listSetting, type Config } from './config.js'
import { createBackends } from './services/backends/create-backends.js'
import { RunExporter } from './services/export/export-archive.js'
import type { BackendRegistry } from './services/backends/registry.js'
import { FetchPolicy } from './services/http/address-policy.js'
import { findFfmpeg } from './services/media/ffmpeg.js'
import { MediaDelivery } from './services/media/media-delivery.js'
import { Thumbnails } from './services/media/thumbnails.js'
import { RunstoreMetrics } from './services/metrics/metrics.js'
import { createTextProviders } from './services/pipeline/llm-providers.js'
import { loadPipelines } from './services/pipeline/pipeline-definitions.js'
import { PipelineRunner } from './services/pipeline/pipeline-runner.js'
import { GenerationStage } from './services/pipeline/stages/generation.js'
import { InterceptionStage } from './services/pipeline/stages/interception.js'
import { PreInterceptionStage } from './services/pipeline/stages/pre-interception.js'
import { PreOutputSafetyStage } from './services/pipeline/stages/pre-output-safety.js'
import type { TextStep } from './services/pipeline/types.js'
import type { BlobStore } from './services/storage/blob/blob-store.js'
import { LocalBlobStore } from './services/storage/blob/local.js'
import type { ReconcileReport, RunIndex } from './services/storage/index/run-index.js'
import { openRunIndex } from './services/storage/index/open-index.js'
import { MediaIngester } from './services/storage/ingest.js'
import { finishInterruptedRuns } from './services/storage/interrupted-runs.js'
import { RunEvents } from './services/storage/run-events.js'
import { RunStorage } from './services/storage/run-storage.js'
import { isRunId } from './services/storage/run-id.js'
import { THUMBNAIL_WIDTHS } from './schemas/media-api.js'

export type Logger = Pick<BaseLogger, 'info' | 'warn' | 'error'>

/** The pipeline's stages, in the order they run: the one place that order is written. */
export const PIPELINE_STAGES = [
  () => new PreInterceptionStage(), // translation and the safety check of the input
  () => new InterceptionStage(), // the pipeline transforms the prompt
  () => new PreOutputSafetyStage(), // the transformed prompt, checked for each media type
  () => new GenerationStage() // the output configs on their backends, through the queues
] as const

/** Every service of runstore, built from one Config; the server, the CLI, benches and tests use the same. */
export interface Runstore {
  readonly config: Config
  readonly logger: Logger
  readonly fetchPolicy: FetchPolicy
  /** the bytes of the runs */
  readonly blobs: BlobStore
  /** "a run changed", after every durable write or deletion */
  readonly events: RunEvents
  /** the run records: metadata, status rules, per-run lock, media in and out */
  readonly storage: RunStorage
  /** the runs for listing, kept current by the events */
  readonly index: RunIndex
  readonly mediaDelivery: MediaDelivery
  /** thumbnails and posters of the outputs, made once, kept outside the run folders */
  readonly thumbnails: Thumbnails
  /** bulk exports: the selected runs' folders with a table, a gallery and a report, as one ZIP stream */
  readonly exporter: RunExporter
  readonly backends: BackendRegistry
  readonly pipeline: PipelineRunner
  /** what the start found: the index's reconcile with the store */
  readonly indexReport: ReconcileReport
  /** runs a stopped process had left `running`, ended at this start as failed (RUN_INTERRUPTED) */
  readonly interruptedRuns: string[]
  /** the numbers GET /metrics shows, in a registry of this instance's own */
  readonly metrics: RunstoreMetrics
  /** Stops the runs still going (recorded as failed), then the backends and the index. */
  close: () => Promise<void>
}

const SILENT: Logger = { info () {}, warn () {}, error () {} }

/** The run records over their blob store, and the events they emit: nothing is read or swept yet. */
export interface Store {
  readonly blobs: BlobStore
  readonly events: RunEvents
  readonly storage: RunStorage
}

/**
 * The store alone. createRunstore builds on it; a maintenance tool that reads
 * while a service may be writing uses it as it is: no crash sweep (that would
 * take the service's half-made files), no index, no backends.
 */
export function openStore (config: Config, options: { logger?: Logger, fetchPolicy?: FetchPolicy } = {}): Store {
  const logger = options.logger ?? SILENT
  const blobs = new LocalBlobStore(resolve(config.RUNS_DIR))
  const events = new RunEvents({
    onListenerError: (err, event, listener) => { logger.error({ err, run_id: event.run_id, listener }, `${listener} missed a change`) }
  })
  const storage = new RunStorage({
    blobs,
    events,
    metadataCacheEntries: config.METADATA_CACHE_ENTRIES,
    maxImagePixels: config.MAX_IMAGE_PIXELS,
    ingester: new MediaIngester({
      maxBytes: config.MAX_UPLOAD_BYTES,
      fetchTimeoutMs: config.FETCH_TIMEOUT_MS,
      maxRedirects: config.FETCH_MAX_REDIRECTS,
      fetchPolicy: options.fetchPolicy ?? new FetchPolicy(listSetting(config.ALLOWED_FETCH_HOSTS))
    })
  })
  return { blobs, events, storage }
}

/**
 * The composition root. Reads and checks every definition file first (a
 * broken pipeline or output config stops here, before anything is touched),
 * then prepares the store (crash sweep), reconciles the index with it and
 * ends the runs a stopped process left running.
 */
export async function createRunstore (config: Config, options: { logger?: Logger } = {}): Promise<Runstore> {
  const logger = options.logger ?? SILENT
  const startedAt = new Date()
  const runsDir = resolve(config.RUNS_DIR)
  const pipelinesDir = join(resolve(config.CONFIGS_DIR), 'pipelines')

  const fetchPolicy = new FetchPolicy(listSetting(config.ALLOWED_FETCH_HOSTS))
  const backends = await createBackends(config, { fetchPolicy })
  let pipeline: PipelineRunner | undefined
  let index: RunIndex | undefined
  let metrics: RunstoreMetrics | undefined
  let closed = false
  // Runs still going are stopped and recorded first (their last writes reach the index), then what they used.
  const close = async (): Promise<void> => {
    if (closed) return
    closed = true
    metrics?.close()
    await pipeline?.close()
    await backends.close()
    await index?.close()
  }
  try {
    const { blobs, events, storage } = openStore(config, { logger, fetchPolicy })
    pipeline = new PipelineRunner({
      storage,
      backends,
      pipelines: await loadPipelines(pipelinesDir),
      pipelinesDir,
      textProviders: createTextProviders({
        eco: { baseUrl: config.LLM_ECO_BASE_URL, model: config.LLM_ECO_MODEL },
        fast: { baseUrl: config.LLM_FAST_BASE_URL, model: config.LLM_FAST_MODEL, apiKey: config.LLM_FAST_API_KEY },
        timeoutMs: config.LLM_TIMEOUT_MS,
        llmSteps: listSetting(config.LLM_STEPS) as TextStep[]
      }),
      publicBaseUrl: config.PUBLIC_BASE_URL,
      logger
    })
    for (const stage of PIPELINE_STAGES) pipeline.addStage(stage())

    const mediaDelivery = new MediaDelivery({ blobs, cacheBytes: config.MEDIA_CACHE_BYTES, maxCachedFileBytes: config.MEDIA_CACHE_MAX_FILE_BYTES })
    events.subscribe('media-cache', (event) => { if (event.type === 'run.deleted') mediaDelivery.evictRun(event.run_id) })

    const { removed } = await storage.init()
    if (removed.length > 0) logger.warn({ removed }, 'removed leftovers of an interrupted write')

    const thumbnails = await openThumbnails(config, runsDir, blobs, logger)
    events.subscribe('thumbnails', async (event) => { if (event.type === 'run.deleted') await thumbnails.removeRun(event.run_id) })

    const indexPath = resolve(config.RUN_INDEX_PATH ?? join(runsDir, '.index.sqlite'))
    const opened = await openRunIndex(indexPath, storage)
    const runIndex: RunIndex = index = opened.index
    const indexReport = opened.report
    if (opened.inMemoryBecause !== null) {
      logger.error({ err: opened.inMemoryBecause, path: indexPath }, 'the run index file cannot be written (its disk is full or read-only): runs are listed from memory until the next start builds the file again')
    }
    logReconcile(logger, indexReport)
    events.subscribe('run index', async (event) => {
      if (event.type === 'run.deleted') await runIndex.remove(event.run_id)
      else if (event.type !== 'output.added') await runIndex.upsert(event.metadata)
    })
    const interrupted = await finishInterruptedRuns(storage, runIndex, startedAt)
    const interruptedRuns = interrupted.finished
    if (interruptedRuns.length > 0) logger.warn({ count: interruptedRuns.length, first: interruptedRuns.slice(0, 20) }, 'runs left running by a stopped process ended as failed (RUN_INTERRUPTED)')
    if (interrupted.failed.length > 0) logger.error({ err: interrupted.failed[0]!.err, count: interrupted.failed.length, first: interrupted.failed.slice(0, 20).map((f) => f.run_id) }, 'runs left running by a stopped process could not be ended now; the next start tries again')

    metrics = new RunstoreMetrics({ events, backends, index: runIndex, blobs, logger })
    const exporter = new RunExporter({ storage, index: runIndex })

    return { config, logger, fetchPolicy, blobs, events, storage, index: runIndex, mediaDelivery, thumbnails, exporter, backends, pipeline, indexReport, interruptedRuns, metrics, close }
  } catch (err) {
    await close()
    throw err
  }
}

/**
 * The thumbnail cache, swept of half-written files and of the thumbnails of
 * runs that are gone; ffmpeg is looked for on PATH once, here.
 */
async function openThumbnails (config: Config, runsDir: string, blobs: BlobStore, logger: Logger): Promise<Thumbnails> {
  const cacheDir = resolve(config.THUMBNAIL_CACHE_DIR ?? join(runsDir, '.thumbnails'))
  const inRunsDir = relative(runsDir, cacheDir).split(sep)[0]!
  // Thumbnails must never land in a run folder: the run folder is the research unit, byte for byte.
  if (inRunsDir === '' || isRunId(inRunsDir)) throw new Error(`THUMBNAIL_CACHE_DIR ${cacheDir} is RUNS_DIR or inside a run folder; choose a folder of its own`)
  const ffmpeg = await findFfmpeg(process.env.PATH)
  const thumbnails = new Thumbnails({
    blobs,
    cacheDir,
    maxImagePixels: config.MAX_IMAGE_PIXELS,
    ffmpeg,
    maxWidth: Math.max(...THUMBNAIL_WIDTHS),
    concurrency: availableParallelism(),
    logger
  })
  // The runs are listed only when the cache holds thumbnails at all.
  let runs: Promise<Set<string>> | undefined
  try {
    const swept = await thumbnails.sweep(async (runId) => (await (runs ??= blobs.listRuns().then((ids) => new Set(ids)))).has(runId))
    if (swept.length > 0) logger.info({ count: swept.length, first: swept.slice(0, 20) }, 'removed thumbnails of runs that are gone, and half-written ones')
  } catch (err) {
    // Derived data: a cache that cannot be read only means thumbnails are made anew.
    logger.warn({ err, cache: cacheDir }, 'the thumbnail cache could not be swept')
  }
  return thumbnails
}

function logReconcile (logger: Logger, report: ReconcileReport): void {
  const { rebuilt, fullScan, added, updated, removed, skipped } = report
  if (rebuilt === 'missing') logger.info({ runs: added }, 'run index built from the stored runs')
  else if (rebuilt !== null) logger.warn({ reason: rebuilt, runs: added }, 'run index built again from the stored runs')
  else if (added + updated + removed > 0) logger.warn({ full_scan: fullScan, added, updated, removed }, 'run index caught up with the stored runs')
  if (skipped.length > 0) logger.warn({ count: skipped.length, first: skipped.slice(0, 20) }, 'stored runs left out of the index')
}
