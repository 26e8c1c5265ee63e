import type { MediaOutput, RunMetadata, RunStatus, StageRecord } from '../../schemas/run.js'
import type { ErrorBody } from '../errors.js'
import type { RunChanges, RunStorage } from '../storage/run-storage.js'
import { mediaAnswer } from './answers.js'
import type { PipelineEvent } from './events.js'
import type { PipelineDefinition } from './pipeline-definitions.js'
import type { PlannedOutput, RunRequest } from './prepare-run.js'
import type { TextProviders } from './types.js'

/** One stage of the pipeline: a name for events and records, and the work. */
export interface PipelineStage {
  readonly name: string
  run: (context: RunContext) => Promise<void>
}

/** What one step (translation, safety, …) did, for its record in metadata.json. */
export interface StepReport {
  /** completed unless said otherwise; failed when `error` is set */
  status?: 'completed' | 'blocked' | 'failed'
  output?: string | null
  provider?: string
  model?: string | null
  decision?: unknown
  details?: Record<string, unknown>
  /** why the step failed, after whatever it did get done; step() records and throws it */
  error?: unknown
}

/** Why a stage stopped a run: the blocked answer's stage, reason and codes. */
export interface RunBlock {
  stage: string
  reason: string
  codes: string[]
}

// How stale the on-disk trail of a running run may get before a stage end writes it.
const FLUSH_INTERVAL_MS = 250

type PendingChanges = Required<Pick<RunChanges, 'stages' | 'errors'>> & Pick<RunChanges, 'transformed_text'>

export interface RunContextOptions {
  /** how old the last write may get before pending stage records are written (default FLUSH_INTERVAL_MS) */
  flushIntervalMs?: number | undefined
  runId: string
  request: RunRequest
  pipeline: PipelineDefinition
  providers: TextProviders
  outputs: readonly PlannedOutput[]
  storage: RunStorage
  signal: AbortSignal
  /** prefix of the URL in media_stored events; relative URLs when empty */
  publicBaseUrl: string
  emit: (event: PipelineEvent) => void
  /** what a step's record and errors[] say of a failure */
  describeError: (err: unknown) => ErrorBody
}

/**
 * What the stages of one run share: the request, the text as it moves from
 * stage to stage, the planned outputs, and step() to time, record and
 * announce each piece of work. Records are buffered and written by flush().
 */
export class RunContext {
  readonly runId: string
  readonly request: RunRequest
  readonly pipeline: PipelineDefinition
  /** the text providers of the run's execution mode */
  readonly providers: TextProviders
  readonly outputs: readonly PlannedOutput[]
  readonly storage: RunStorage
  /** aborted when the service shuts down */
  readonly signal: AbortSignal
  /** input, then translation, then the transformed prompt: what the next stage works on */
  text: string
  /** set by a stage that stops the run; the runner ends it as blocked */
  blocked: RunBlock | null = null
  readonly stored: MediaOutput[] = []
  readonly #options: RunContextOptions
  readonly #recorded = new WeakMap<object, string>()
  #pending: PendingChanges = { stages: [], errors: [] }
  #lastWrite = performance.now()

  constructor (options: RunContextOptions) {
    this.#options = options
    this.runId = options.runId
    this.request = options.request
    this.pipeline = options.pipeline
    this.providers = options.providers
    this.outputs = options.outputs
    this.storage = options.storage
    this.signal = options.signal
    this.text = options.request.input_text
  }

  emit (event: PipelineEvent): void {
    this.#options.emit(event)
  }

  /**
   * Runs one piece of work and records it in metadata.json (output, provider,
   * model, decision, duration), announcing it with stage_started and
   * stage_completed. A failure is recorded (stage and errors[]) and thrown.
   */
  async step (name: string, work: () => Promise<StepReport>, announce: Record<string, unknown> = {}): Promise<StageRecord> {
    this.signal.throwIfAborted()
    this.emit({ type: 'stage_started', data: { run_id: this.runId, stage: name, ...announce } })
    const startedAt = new Date().toISOString()
    const start = performance.now()
    let report: StepReport
    try {
      report = await work()
    } catch (err) {
      report = { error: err }
    }
    // Only an object can be remembered as recorded; anything else thrown becomes one.
    if (report.error !== undefined && (typeof report.error !== 'object' || report.error === null)) report = { ...report, error: new Error(String(report.error)) }
    const failed = report.error !== undefined
    const record: StageRecord = {
      stage: name,
      status: report.status ?? (failed ? 'failed' : 'completed'),
      ...(report.output !== undefined ? { output: report.output } : {}),
      ...(report.provider !== undefined ? { provider: report.provider } : {}),
      ...(report.model !== undefined ? { model: report.model } : {}),
      ...(report.decision !== undefined ? { decision: report.decision } : {}),
      duration_ms: Math.round((performance.now() - start) * 100) / 100,
      started_at: startedAt,
      ...(report.details !== undefined ? { details: report.details } : {}),
      ...(failed ? { error: this.#options.describeError(report.error) } : {})
    }
    this.#pending.stages.push(record)
    if (failed) this.recordError(name, report.error)
    this.emit({ type: 'stage_completed', data: { run_id: this.runId, ...record } })
    if (failed) throw report.error
    return record
  }

  /** The interception result: transformed_text.txt and metadata, written with the next flush. */
  setTransformedText (text: string): void {
    this.#pending.transformed_text = text
  }

  /**
   * Writes what the steps recorded since the last write (stage records,
   * errors, the transformed text), with a new status if given, in one durable
   * update: a run costs a few metadata writes, not one per step. Stages call
   * it before anything leaves the service (a backend runs), so the trail up
   * to that point is on disk.
   */
  async flush (status?: RunStatus): Promise<RunMetadata> {
    const changes: RunChanges = { ...this.#pending, ...(status !== undefined ? { status } : {}) }
    this.#pending = { stages: [], errors: [] }
    this.#lastWrite = performance.now()
    return await this.storage.update(this.runId, changes)
  }

  /** Flushes when the last write is older than FLUSH_INTERVAL_MS, so slow stages (an LLM) show up while the run goes on. */
  async flushIfStale (): Promise<void> {
    const pending = this.#pending.stages.length + this.#pending.errors.length > 0 || this.#pending.transformed_text !== undefined
    if (pending && performance.now() - this.#lastWrite >= (this.#options.flushIntervalMs ?? FLUSH_INTERVAL_MS)) await this.flush()
  }

  /** Stops the run after the current stage: status "blocked", 403 with this stage, reason and codes. */
  block (stage: string, reason: string, codes: string[]): void {
    this.blocked ??= { stage, reason, codes }
  }

  /** Lists a stored output of the run and announces it with its URL. */
  async addStored (output: MediaOutput): Promise<void> {
    this.stored.push(output)
    const metadata = await this.storage.getMetadata(this.runId)
    this.emit({ type: 'media_stored', data: mediaAnswer(metadata, output, this.#options.publicBaseUrl) })
  }

  /** Notes a failure for errors[]; it is written with the next flush. */
  recordError (stage: string | null, err: unknown): void {
    const { code, message } = this.#options.describeError(err)
    this.#pending.errors.push({ ...(stage !== null ? { stage } : {}), code, message })
    if (typeof err === 'object' && err !== null) this.#recorded.set(err, stage ?? '')
  }

  isRecorded (err: unknown): boolean {
    return typeof err === 'object' && err !== null && this.#recorded.has(err)
  }

  /** The step an error was recorded for, if it was. */
  failedStep (err: unknown): string | null {
    if (typeof err !== 'object' || err === null) return null
    const stage = this.#recorded.get(err)
    return stage === undefined || stage === '' ? null : stage
  }
}
