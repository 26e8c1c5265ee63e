import { availableParallelism } from 'node:os'
import { join, relative, resolve, sep } from 'node:path'
import type { BaseLogger } from 'pino'
import { listSetting, type Config } from './config.js'
import { createBackends } from './services/backends/create-backends.js'
import { AutoExport, autoExportFormats } from './services/export/auto-export.js'
import { RunExporter } from './services/export/export-archive.js'
import type { BackendRegistry } from './services/backends/registry.js'
import { PostgresQueue } from './services/generation/postgres-queue.js'
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
import { createBlobStore } from './services/storage/blob/create-blob-store.js'
import type { ReconcileReport, RunIndex, RunSource } from './services/storage/index/run-index.js'
import { openConfiguredIndex } from './services/storage/index/open-index.js'
import { MediaIngester } from './services/storage/ingest.js'
import { finishInterruptedRuns } from './services/storage/interrupted-runs.js'
import { RunEvents } from './services/storage/run-events.js'
import { RunStorage, type WriteJournal } from './services/storage/run-storage.js'
import { RunTrash } from './services/storage/run-trash.js'
import { RepeatingTask } from './services/repeating-task.js'
import { RunArchive } from './services/storage/archive/run-archive.js'
import { StoreLock } from './services/storage/store-lock.js'
import { isRunId } from './services/storage/run-id.js'
import { isDiskRefusal } from './services/storage/disk-errors.js'
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
  /** deleted runs, restorable until the trash is emptied (TRASH_DAYS) */
  readonly trash: RunTrash
  /** old runs packed into monthly archives (ARCHIVE_AFTER_DAYS), restored, pruned (RETENTION_DAYS) */
  readonly archives: RunArchive
  /** archive + prune every MAINTENANCE_INTERVAL_HOURS (off at 0) */
  readonly maintenance: RepeatingTask
  /** the runs for listing, kept current by the events */
  readonly index: RunIndex
  readonly mediaDelivery: MediaDelivery
  /** thumbnails and posters of the outputs, made once, kept outside the run folders */
  readonly thumbnails: Thumbnails
  /** bulk exports: the selected runs' folders with a table, a gallery and a report, as one ZIP stream */
  readonly exporter: RunExporter
  /** each run's export written into EXPORT_DIR when it ends (AUTO_EXPORT_FORMATS); null when off */
  readonly autoExport: AutoExport | null
  readonly backends: BackendRegistry
  readonly pipeline: PipelineRunner
  /**
   * The start's work that reads every run, done in the background while the
   * service serves: the crash sweep and the index's build or catch-up (then
   * the interrupted runs an index build found). Never rejects.
   */
  readonly startup: Promise<StartupReport>
  /** whether `startup` has settled */
  readonly startupDone: () => boolean
  /** runs a stopped process had left `running`, ended as failed (RUN_INTERRUPTED) by the start's background work (filled when startup settles) */
  readonly interruptedRuns: string[]
  /** the numbers GET /metrics shows, in a registry of this instance's own */
  readonly metrics: RunstoreMetrics
  /** Stops the runs still going (recorded as failed), then the backends and the index. */
  close: () => Promise<void>
}

export interface StartupReport {
  /** what the crash sweep removed */
  removed: string[]
  /** the index's catch-up with the store, with the journal read at start */
  index: ReconcileReport
  /** auto exports a stopped process had not finished, queued again */
  pendingExports: string[]
}

const HOUR_MS = 60 * 60 * 1000
const SILENT: Logger = { info () {}, warn () {}, error () {} }

/** The run records over their blob store, and the events they emit: nothing is read or swept yet. */
export interface Store {
  readonly blobs: BlobStore
  readonly events: RunEvents
  readonly storage: RunStorage
  readonly trash: RunTrash
  readonly archives: RunArchive
}

/**
 * The store alone. createRunstore builds on it; a maintenance tool that reads
 * while a service may be writing uses it as it is: no crash sweep (that would
 * take the service's half-made files), no index, no backends.
 */
export function openStore (config: Config, options: { logger?: Logger, fetchPolicy?: FetchPolicy, journal?: WriteJournal } = {}): Store {
  const logger = options.logger ?? SILENT
  const blobs = createBlobStore(config)
  const events = new RunEvents({
    onListenerError: (err, event, listener) => { logger.error({ err, run_id: event.run_id, listener }, `${listener} missed a change`) }
  })
  const storage = new RunStorage({
    blobs,
    events,
    metadataCacheEntries: config.METADATA_CACHE_ENTRIES,
    ...(options.journal === undefined ? {} : { journal: options.journal }),
    maxImagePixels: config.MAX_IMAGE_PIXELS,
    ingester: new MediaIngester({
      maxBytes: config.MAX_UPLOAD_BYTES,
      fetchTimeoutMs: config.FETCH_TIMEOUT_MS,
      maxRedirects: config.FETCH_MAX_REDIRECTS,
      fetchPolicy: options.fetchPolicy ?? new FetchPolicy(listSetting(config.ALLOWED_FETCH_HOSTS))
    })
  })
  const trash = new RunTrash(storage, { trashDays: config.TRASH_DAYS })
  const archives = new RunArchive({ storage, trash, dir: archiveDirOf(config), archiveAfterDays: config.ARCHIVE_AFTER_DAYS, retentionDays: config.RETENTION_DAYS })
  return { blobs, events, storage, trash, archives }
}

/** ARCHIVE_DIR, else RUNS_DIR/archive: never the runs folder itself or inside a run folder. */
export function archiveDirOf (config: Config): string {
  const runsDir = resolve(config.RUNS_DIR)
  const dir = resolve(config.ARCHIVE_DIR ?? join(runsDir, 'archive'))
  const inRunsDir = relative(runsDir, dir).split(sep)[0]!
  if (inRunsDir === '' || isRunId(inRunsDir)) throw new Error(`ARCHIVE_DIR ${dir} is RUNS_DIR or inside a run folder; choose a folder of its own`)
  return dir
}

/**
 * Keeps an index current with the store's change events: the server's
 * index, and the one a maintenance command opens while the server is stopped.
 */
export function followStore (events: RunEvents, index: RunIndex): () => void {
  return events.subscribe('run index', async (event) => {
    if (event.type === 'run.deleted') await index.remove(event.run_id)
    else if (event.type === 'run.archived') await index.upsert(event.metadata, event.archive)
    else if (event.type !== 'output.added') await index.upsert(event.metadata)
  })
}

/** What the index's catch-up reads: the live runs, and the archived ones so that a rebuilt index lists them too. */
export function indexSource (store: Pick<Store, 'storage' | 'archives'>): RunSource {
  return {
    listRunIds: async () => await store.storage.listRunIds(),
    readMetadata: async (runId) => await store.storage.readMetadata(runId),
    archives: store.archives
  }
}

/**
 * The composition root. Reads and checks every definition file first (a
 * broken pipeline or output config stops here, before anything is touched),
 * then prepares the store and opens the index (reading again only the runs
 * its journal names). What reads every run (the crash sweep, the index's
 * build or catch-up) and ending the runs a stopped process left running
 * happen in the background: `startup`.
 */
export async function createRunstore (config: Config, options: { logger?: Logger } = {}): Promise<Runstore> {
  const logger = options.logger ?? SILENT
  const startedAt = new Date()
  const runsDir = resolve(config.RUNS_DIR)
  const pipelinesDir = join(resolve(config.CONFIGS_DIR), 'pipelines')

  const fetchPolicy = new FetchPolicy(listSetting(config.ALLOWED_FETCH_HOSTS))
  // With DATABASE_URL the backends' slots and waiting lines are shared by every instance on that database (joined once the index is open).
  const sharedQueues = config.DATABASE_URL === undefined ? undefined : new PostgresQueue({ url: config.DATABASE_URL })
  const backends = await createBackends(config, { fetchPolicy, sharedQueues })
  let pipeline: PipelineRunner | undefined
  let index: RunIndex | undefined
  let metrics: RunstoreMetrics | undefined
  let lock: StoreLock | undefined
  let maintenance: RepeatingTask | undefined
  let stoppedInstances: RepeatingTask | undefined
  let autoExport: AutoExport | null = null
  let closed = false
  // Runs still going are stopped and recorded first (their last writes reach the index), then what they used.
  const close = async (): Promise<void> => {
    if (closed) return
    closed = true
    await maintenance?.close()
    await stoppedInstances?.close()
    metrics?.close()
    await pipeline?.close()
    // after the pipeline: the runs it stopped have ended and are noted for export
    await autoExport?.close()
    await backends.close()
    await sharedQueues?.close()
    await index?.close()
    await lock?.release()
  }
  try {
    // The index opens after the store (it reads the runs its journal names), and journals every write from then on.
    let journal: RunIndex | undefined
    const store = openStore(config, { logger, fetchPolicy, journal: { begin: async (runId) => { await journal?.begin(runId) } } })
    const { blobs, events, storage, trash, archives } = store
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
    // An archived run leaves the store like a deleted one: nothing of it may be served from memory or the thumbnail cache.
    const leaves = (type: string): boolean => type === 'run.deleted' || type === 'run.archived'
    events.subscribe('media-cache', (event) => { if (leaves(event.type)) mediaDelivery.evictRun(event.run_id) })

    await storage.prepare()
    // Before anything of the store is read for serving: one service per store, and no maintenance command behind its back.
    lock = await StoreLock.acquire(runsDir, 'server').catch((err: unknown) => {
      // A full or read-only disk must not keep the service from serving what it has; the maintenance commands then find no holder.
      if (!isDiskRefusal(err)) throw err
      logger.warn({ err }, 'the store lock could not be written (the disk is full or read-only): maintenance commands cannot tell that this service runs')
      return undefined
    })
    const thumbnails = await openThumbnails(config, runsDir, blobs, logger)
    events.subscribe('thumbnails', async (event) => { if (leaves(event.type)) await thumbnails.removeRun(event.run_id) })

    const opened = await openConfiguredIndex(indexSettingsOf(config), storage)
    const indexPath = opened.where
    const runIndex: RunIndex = index = journal = opened.index
    // After the index: it tells a new database by the migrations it applies itself.
    await sharedQueues?.start()
    if (opened.inMemoryBecause !== null) {
      logger.error({ err: opened.inMemoryBecause, path: indexPath }, 'the run index file cannot be written (its disk is full or read-only): runs are listed from memory until the next start builds the file again')
    }
    if (opened.journal.journaled > 0) logger.warn({ runs: opened.journal.journaled }, 'runs a stopped process was writing were read again into the run index')
    followStore(events, runIndex)
    const interruptedRuns: string[] = []
    const finishInterrupted = async (): Promise<void> => {
      const interrupted = await finishInterruptedRuns(storage, runIndex, startedAt, indexSource(store))
      interruptedRuns.push(...interrupted.finished)
      if (interrupted.finished.length > 0) logger.warn({ count: interrupted.finished.length, first: interrupted.finished.slice(0, 20) }, 'runs left running by a stopped process ended as failed (RUN_INTERRUPTED)')
      if (interrupted.failed.length > 0) logger.error({ err: interrupted.failed[0]!.err, count: interrupted.failed.length, first: interrupted.failed.slice(0, 20).map((f) => f.run_id) }, 'runs left running by a stopped process could not be ended now; the next start (with DATABASE_URL, the next check) tries again')
    }
    if (!runIndex.progress().complete) logger.warn({ path: indexPath, reason: opened.rebuilt }, 'the run index is being built from the stored runs in the background; listings are incomplete until it ends (GET /ready shows the progress)')
    // After a clean stop nothing is half-made: the sweep, which reads every run folder, is for crashes; so is the index file's check.
    const sweep = runIndex.lastStopWasClean ? Promise.resolve({ removed: [] }) : storage.init()
    if (!runIndex.lastStopWasClean && runIndex.progress().complete && opened.checkIntegrity !== null) {
      void opened.checkIntegrity().then((result) => {
        if (result !== 'ok') logger.error({ path: indexPath, found: result.slice(0, 500) }, 'the run index file is damaged: the next start builds it again (or run `runstore reindex` with the service stopped)')
      }, (err: unknown) => { logger.error({ err, path: indexPath }, 'the run index file could not be checked') })
    }
    const exporter = new RunExporter({ storage, index: runIndex })
    const exportFormats = autoExportFormats(config.AUTO_EXPORT_FORMATS)
    if (exportFormats.length > 0) {
      autoExport = new AutoExport({ exporter, storage, dir: config.EXPORT_DIR, formats: exportFormats, logger })
      autoExport.subscribe(events)
    }
    const startup = (async (): Promise<StartupReport> => {
      // First: the runs that finishInterruptedRuns ends below are noted after these, and exported too.
      const pendingExports = await autoExport?.resumePending().catch((err: unknown) => {
        logger.error({ err, dir: config.EXPORT_DIR }, 'the auto exports a stopped process left could not be read; the next start tries again')
        return []
      }) ?? []
      if (pendingExports.length > 0) logger.warn({ count: pendingExports.length }, 'auto exports a stopped process had not finished are done again')
      const [swept, report] = await Promise.all([
        sweep.catch((err: unknown) => {
          logger.error({ err }, 'the crash sweep of the store failed; the next start tries again')
          return { removed: [] }
        }),
        runIndex.catchUp(indexSource(store)).catch((err: unknown) => {
          logger.error({ err }, 'the run index could not catch up with the store; `runstore reindex` builds it again')
          return { rebuilt: opened.rebuilt, fullScan: false, journaled: 0, added: 0, updated: 0, removed: 0, skipped: [] } satisfies ReconcileReport
        })
      ])
      if (swept.removed.length > 0) logger.warn({ removed: swept.removed }, 'removed leftovers of an interrupted write')
      if (!runIndex.lastStopWasClean) await sweepThumbnails(thumbnails, blobs, logger)
      const indexReport: ReconcileReport = { ...report, journaled: opened.journal.journaled, skipped: [...opened.journal.skipped, ...report.skipped] }
      logReconcile(logger, indexReport)
      // Found through the index, so once it is complete (a build lacks most runs before).
      if (!closed) await finishInterrupted().catch((err: unknown) => { logger.error({ err }, 'runs left running by a stopped process could not be ended') })
      return { removed: swept.removed, index: indexReport, pendingExports }
    })()
    let startupDone = false
    void startup.finally(() => { startupDone = true })

    metrics = new RunstoreMetrics({ events, backends, index: runIndex, blobs, logger })
    maintenance = new RepeatingTask({
      intervalMs: config.MAINTENANCE_INTERVAL_HOURS * HOUR_MS,
      work: async () => { await runMaintenance(archives, logger) },
      failure: 'the scheduled maintenance (archive, prune) failed; the next interval tries again',
      logger
    })
    maintenance.start()
    // Instances that share an index end what one of them left running when it died; no restart of it needed.
    if (config.DATABASE_URL !== undefined) {
      stoppedInstances = new RepeatingTask({
        intervalMs: config.STOPPED_INSTANCE_CHECK_MS,
        work: async () => { if (startupDone && !closed) await finishInterrupted() },
        failure: 'the check for runs left by stopped instances failed; the next interval tries again',
        logger
      })
      stoppedInstances.start()
    }

    return { config, logger, fetchPolicy, blobs, events, storage, trash, archives, maintenance, index: runIndex, mediaDelivery, thumbnails, exporter, autoExport, backends, pipeline, startup, startupDone: () => startupDone, interruptedRuns, metrics, close }
  } catch (err) {
    await close()
    throw err
  }
}

/** The store for a maintenance command that writes, with the index kept current, under the store lock. */
export interface MaintenanceStore extends Store {
  readonly index: RunIndex
  close: () => Promise<void>
}

/**
 * For `runstore archive | prune | restore` while the service is stopped:
 * the store lock first (StoreLockedError while a service or another command
 * holds it), then the store and its index, which follows every change as in
 * the service. No crash sweep, no backends.
 */
/** Where the run index is: PostgreSQL when DATABASE_URL is set, otherwise the SQLite file. */
export function indexSettingsOf (config: Config): { databaseUrl: string | undefined, poolSize: number, path: string } {
  return { databaseUrl: config.DATABASE_URL, poolSize: config.DATABASE_POOL_SIZE, path: indexPathOf(config) }
}

export async function openMaintenanceStore (config: Config, role: string): Promise<MaintenanceStore> {
  const lock = await StoreLock.acquire(resolve(config.RUNS_DIR), role)
  let index: RunIndex | undefined
  try {
    const store = openStore(config, { journal: { begin: async (runId) => { await index?.begin(runId) } } })
    const opened = await openConfiguredIndex(indexSettingsOf(config), store.storage)
    index = opened.index
    followStore(store.events, opened.index)
    return { ...store, index: opened.index, close: async () => { await opened.index.close(); await lock.release() } }
  } catch (err) {
    await lock.release()
    throw err
  }
}

/** Archive, then prune, with what they did in the log: the schedule's work. */
export async function runMaintenance (archives: RunArchive, logger: Logger): Promise<void> {
  const archived = await archives.archive()
  const runs = archived.archives.reduce((n, a) => n + a.runs.length, 0)
  if (runs > 0) logger.info({ runs, archives: archived.archives.map((a) => a.archive) }, 'old runs archived')
  const pruned = await archives.prune()
  if (pruned.archives.length > 0 || pruned.trash.removed.length > 0) logger.info({ archives: pruned.archives.map((a) => a.archive), trashed_runs: pruned.trash.removed.length }, 'old archives and trashed runs removed for good')
}

/** Where the run index file is: RUN_INDEX_PATH, else beside the runs. */
export function indexPathOf (config: Config): string {
  return resolve(config.RUN_INDEX_PATH ?? join(config.RUNS_DIR, '.index.sqlite'))
}

/** The thumbnail cache; ffmpeg is looked for on PATH once, here. */
async function openThumbnails (config: Config, runsDir: string, blobs: BlobStore, logger: Logger): Promise<Thumbnails> {
  const cacheDir = resolve(config.THUMBNAIL_CACHE_DIR ?? join(runsDir, '.thumbnails'))
  const inRunsDir = relative(runsDir, cacheDir).split(sep)[0]!
  // Thumbnails must never land in a run folder: the run folder is the research unit, byte for byte.
  if (inRunsDir === '' || isRunId(inRunsDir)) throw new Error(`THUMBNAIL_CACHE_DIR ${cacheDir} is RUNS_DIR or inside a run folder; choose a folder of its own`)
  const ffmpeg = await findFfmpeg(process.env.PATH)
  return new Thumbnails({
    blobs,
    cacheDir,
    maxImagePixels: config.MAX_IMAGE_PIXELS,
    ffmpeg,
    maxWidth: Math.max(...THUMBNAIL_WIDTHS),
    concurrency: availableParallelism(),
    logger
  })
}

/**
 * After a stop that was not clean, in the start's background work: removes
 * half-written thumbnails and those of runs that are gone (a deletion
 * removes its run's thumbnails itself).
 */
async function sweepThumbnails (thumbnails: Thumbnails, blobs: BlobStore, logger: Logger): Promise<void> {
  // The runs are listed only when the cache holds thumbnails at all.
  let runs: Promise<Set<string>> | undefined
  try {
    const swept = await thumbnails.sweep(async (runId) => (await (runs ??= blobs.listRuns().then((ids) => new Set(ids)))).has(runId))
    if (swept.length > 0) logger.info({ count: swept.length, first: swept.slice(0, 20) }, 'removed thumbnails of runs that are gone, and half-written ones')
  } catch (err) {
    // Derived data: a cache that cannot be read only means thumbnails are made anew.
    logger.warn({ err }, 'the thumbnail cache could not be swept')
  }
}

function logReconcile (logger: Logger, report: ReconcileReport): void {
  const { rebuilt, fullScan, added, updated, removed, skipped } = report
  if (rebuilt === 'missing') logger.info({ runs: added }, 'run index built from the stored runs')
  else if (rebuilt !== null) logger.warn({ reason: rebuilt, runs: added }, 'run index built again from the stored runs')
  else if (added + updated + removed > 0) logger.warn({ full_scan: fullScan, added, updated, removed }, 'run index caught up with the stored runs')
  if (skipped.length > 0) logger.warn({ count: skipped.length, first: skipped.slice(0, 20) }, 'stored runs left out of the index')
}
