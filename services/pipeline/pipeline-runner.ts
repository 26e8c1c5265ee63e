import { randomInt } from 'node:crypto'
import { STATUS_CODES } from 'node:http'
import { join } from 'node:path'
import type { AspectRatio, BlockedAnswer, ExecuteAnswer, MediaOutputAnswer, PipelineSummary } from '../../schemas/pipeline.js'
import type { ExecutionMode, MediaOutput, RunMetadata, RunStatus, SafetyLevel, StageRecord } from '../../schemas/run.js'
import type { OutputConfig } from '../backends/output-configs.js'
import type { BackendRegistry } from '../backends/registry.js'
import type { GeneratorBackend } from '../backends/types.js'
import { isCodedError, PipelineDefinitionError, PipelineNotFoundError, QueueFullError, ServiceStoppingError } from '../errors.js'
import type { QueueReservation } from '../generation/queue.js'
import { mediaUrl } from '../media/media-url.js'
import type { RunChanges, RunStorage } from '../storage/run-storage.js'
import type { PipelineDefinition } from './pipeline-definitions.js'
import type { TextProviders } from './types.js'

/** What a client asks for; absent fields take the defaults below. */
export interface ExecuteRequest {
  schema: string
  input_text: string
  execution_mode?: ExecutionMode | undefined
  safety_level?: SafetyLevel | undefined
  user_id?: string | null | undefined
  output_configs?: string[] | undefined
  seed?: number | undefined
  aspect_ratio?: AspectRatio | undefined
  negative_prompt?: string | undefined
}

/** The request with every default decided, as the run is made from it. */
export interface RunRequest {
  schema: string
  input_text: string
  execution_mode: ExecutionMode
  safety_level: SafetyLevel
  user_id: string | null
  output_configs: string[]
  seed: number
  aspect_ratio: AspectRatio | null
  /** what the generators should avoid: the request's, else the pipeline's, else empty */
  negative_prompt: string
}

/** One output config of a run, with its place in its backend's queue already taken. */
export interface PlannedOutput {
  config: OutputConfig
  backend: GeneratorBackend
  width: number
  height: number
  reservation: QueueReservation
}

/** A validated request holding its queue places; run it with execute() or give the places back with release(). */
export interface PreparedRun {
  readonly request: RunRequest
  readonly pipeline: PipelineDefinition
  readonly outputs: readonly PlannedOutput[]
  release: () => void
}

export interface RunCreatedEvent {
  run_id: string
  schema: string
  execution_mode: ExecutionMode
  safety_level: SafetyLevel
  seed: number
  output_configs: string[]
  stages: string[]
}

export interface ErrorEvent {
  run_id: string | null
  /** the step that failed; null when it happened outside one */
  stage: string | null
  statusCode: number
  error: string
  code: string
  message: string
}

/** What a run reports while it goes; the SSE route sends each as one event. */
export type PipelineEvent =
  | { type: 'run_created', data: RunCreatedEvent }
  | { type: 'stage_started', data: { run_id: string, stage: string, [key: string]: unknown } }
  | { type: 'stage_completed', data: StageRecord & { run_id: string } }
  | { type: 'blocked', data: BlockedAnswer }
  | { type: 'media_stored', data: MediaOutputAnswer }
  | { type: 'completed', data: ExecuteAnswer }
  | { type: 'error', data: ErrorEvent }

export type PipelineEventListener = (event: PipelineEvent) => void

export type ExecuteOutcome =
  | { status: 'completed', run_id: string, answer: ExecuteAnswer }
  | { status: 'blocked', run_id: string, answer: BlockedAnswer }
  /** run_id is null when the run could not even be created */
  | { status: 'failed', run_id: string | null, error: unknown, event: ErrorEvent }

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

/** One stage of the pipeline: a name for events and records, and the work. */
export interface PipelineStage {
  readonly name: string
  run: (context: RunContext) => Promise<void>
}

/** Anything with pino's call shape. */
export interface RunnerLogger {
  error: (details: Record<string, unknown>, message: string) => void
}

export interface PipelineRunnerOptions {
  storage: RunStorage
  backends: BackendRegistry
  pipelines: Map<string, PipelineDefinition>
  textProviders: Record<ExecutionMode, TextProviders>
  /** prefix of media URLs in answers and events; relative URLs when empty */
  publicBaseUrl?: string | undefined
  /** where the pipeline files are, to name them when a default output is unknown */
  pipelinesDir?: string | undefined
  logger?: RunnerLogger | undefined
}

interface Block {
  stage: string
  reason: string
  codes: string[]
}

const DEFAULT_SIDE = 1024
const SIZE_STEP = 64
// Before the first generation on a backend has been timed.
const DEFAULT_GENERATION_SECONDS = 5
const MAX_RETRY_AFTER_SECONDS = 300

/**
 * Runs a pipeline request: validates it and takes its queue places before
 * anything is written, creates the run, runs the stages in the order they
 * were added, records every step in metadata.json, and ends the run as
 * completed, blocked or failed. Runs do not depend on their client: one
 * whose client went away still ends and is stored.
 */
export class PipelineRunner {
  readonly #storage: RunStorage
  readonly #backends: BackendRegistry
  readonly #pipelines: Map<string, PipelineDefinition>
  readonly #textProviders: Record<ExecutionMode, TextProviders>
  readonly #publicBaseUrl: string
  readonly #logger: RunnerLogger | undefined
  readonly #stages: PipelineStage[] = []
  readonly #active = new Map<Promise<ExecuteOutcome>, AbortController>()
  readonly #generationSeconds = new Map<string, number>()
  readonly #retryAfter = new WeakMap<object, number>()
  #closing = false

  constructor (options: PipelineRunnerOptions) {
    this.#storage = options.storage
    this.#backends = options.backends
    this.#pipelines = options.pipelines
    this.#textProviders = options.textProviders
    this.#publicBaseUrl = options.publicBaseUrl ?? ''
    this.#logger = options.logger
    checkDefaultOutputs(options.pipelines, options.backends, options.pipelinesDir ?? 'pipelines')
  }

  /** Appends a stage; stages run in the order they were added. */
  addStage (stage: PipelineStage): void {
    if (this.#stages.some((s) => s.name === stage.name)) throw new Error(`pipeline stage ${stage.name} is added twice`)
    this.#stages.push(stage)
  }

  get stages (): readonly PipelineStage[] {
    return this.#stages
  }

  listPipelines (): PipelineSummary[] {
    return [...this.#pipelines.values()].map((p) => ({ name: p.name, title: p.title, description: p.description, default_outputs: p.default_outputs }))
  }

  textProviders (mode: ExecutionMode): TextProviders {
    return this.#textProviders[mode]
  }

  /**
   * Checks the request and reserves a queue place for each output config,
   * writing nothing: PIPELINE_NOT_FOUND and OUTPUT_CONFIG_NOT_FOUND (404),
   * BACKEND_UNAVAILABLE, QUEUE_FULL and SERVICE_STOPPING (503).
   */
  prepare (input: ExecuteRequest): PreparedRun {
    if (this.#closing) throw new ServiceStoppingError()
    const pipeline = this.#pipelines.get(input.schema)
    if (pipeline === undefined) throw new PipelineNotFoundError(input.schema.slice(0, 100))
    const mode = input.execution_mode ?? 'eco'
    const names = input.output_configs ?? pipeline.default_outputs[mode]
    const aspectRatio = input.aspect_ratio ?? null
    const resolved = names.map((name) => this.#backends.resolve(name))
    const outputs: PlannedOutput[] = []
    try {
      for (const { config, backend, queue } of resolved) {
        const { width, height } = outputSize(config, aspectRatio)
        outputs.push({ config, backend, width, height, reservation: queue.reserve() })
      }
    } catch (err) {
      for (const output of outputs) output.reservation.release()
      if (err instanceof QueueFullError) this.#retryAfter.set(err, this.#retryAfterFor(resolved[outputs.length]!.backend.name))
      throw err
    }
    return {
      request: {
        schema: pipeline.name,
        input_text: input.input_text,
        execution_mode: mode,
        safety_level: input.safety_level ?? 'kids',
        user_id: input.user_id ?? null,
        output_configs: outputs.map((o) => o.config.name),
        // Per request, never shared: a seed is part of what a child made.
        seed: input.seed ?? randomInt(0, 2 ** 32),
        aspect_ratio: aspectRatio,
        negative_prompt: input.negative_prompt ?? pipeline.negative_prompt ?? ''
      },
      pipeline,
      outputs,
      release: () => { for (const output of outputs) output.reservation.release() }
    }
  }

  /** Seconds a client refused with QUEUE_FULL should wait: about one generation on that backend. */
  retryAfterSeconds (err: unknown): number | null {
    return typeof err === 'object' && err !== null ? this.#retryAfter.get(err) ?? null : null
  }

  /** prepare() and execute() in one. */
  async run (input: ExecuteRequest, onEvent?: PipelineEventListener): Promise<ExecuteOutcome> {
    return await this.execute(this.prepare(input), onEvent)
  }

  /**
   * Runs a prepared request to its end and says how it ended; it does not
   * throw. Failures are recorded in the run (errors[], status "failed") and
   * returned with the error.
   */
  async execute (prepared: PreparedRun, onEvent?: PipelineEventListener): Promise<ExecuteOutcome> {
    const controller = new AbortController()
    const running = this.#execute(prepared, controller.signal, onEvent)
    this.#active.set(running, controller)
    try {
      return await running
    } finally {
      this.#active.delete(running)
    }
  }

  /** Refuses new runs, stops the ones still going (recorded as failed, SERVICE_STOPPING) and waits for them. */
  async close (): Promise<void> {
    this.#closing = true
    for (const controller of this.#active.values()) controller.abort(new ServiceStoppingError())
    await Promise.allSettled(this.#active.keys())
  }

  /** Resolves when no run is going. */
  async settled (): Promise<void> {
    while (this.#active.size > 0) await Promise.allSettled(this.#active.keys())
  }

  async #execute (prepared: PreparedRun, signal: AbortSignal, onEvent: PipelineEventListener | undefined): Promise<ExecuteOutcome> {
    const started = performance.now()
    const { request } = prepared
    const emit = (event: PipelineEvent): void => {
      if (onEvent === undefined) return
      try {
        onEvent(event)
      } catch (err) {
        this.#logger?.error({ err, event: event.type }, 'a pipeline event listener failed')
      }
    }
    let context: RunContext | undefined
    let currentStage: string | null = null
    try {
      const metadata = await this.#storage.createRun({
        status: 'running',
        schema: request.schema,
        execution_mode: request.execution_mode,
        input_text: request.input_text,
        user_id: request.user_id,
        safety_level: request.safety_level,
        seed: request.seed
      })
      context = new RunContext({
        runId: metadata.run_id,
        request,
        pipeline: prepared.pipeline,
        providers: this.#textProviders[request.execution_mode],
        outputs: prepared.outputs,
        storage: this.#storage,
        signal,
        publicBaseUrl: this.#publicBaseUrl,
        emit,
        describeError: (err) => this.#describeError(err, metadata.run_id),
        observeGeneration: (backend, ms) => this.#observeGeneration(backend, ms)
      })
      emit({
        type: 'run_created',
        data: {
          run_id: metadata.run_id,
          schema: request.schema,
          execution_mode: request.execution_mode,
          safety_level: request.safety_level,
          seed: request.seed,
          output_configs: request.output_configs,
          stages: this.#stages.map((s) => s.name)
        }
      })
      for (const stage of this.#stages) {
        currentStage = stage.name
        signal.throwIfAborted()
        await stage.run(context)
        if (context.blocked !== null) return await this.#endBlocked(context, context.blocked)
        await context.flushIfStale()
      }
      currentStage = null
      const final = await context.flush('completed')
      const answer = context.answer(final, performance.now() - started)
      emit({ type: 'completed', data: answer })
      return { status: 'completed', run_id: metadata.run_id, answer }
    } catch (err) {
      const runId = context?.runId ?? null
      const stage = context?.failedStep(err) ?? currentStage
      if (context !== undefined) await this.#recordFailure(context, stage, err)
      const event = { run_id: runId, stage, ...this.#describeError(err, runId) }
      emit({ type: 'error', data: event })
      return { status: 'failed', run_id: runId, error: err, event }
    } finally {
      prepared.release()
    }
  }

  async #endBlocked (context: RunContext, block: Block): Promise<ExecuteOutcome> {
    await context.flush('blocked')
    const answer: BlockedAnswer = { status: 'blocked', run_id: context.runId, stage: block.stage, reason: block.reason, codes: block.codes }
    context.emit({ type: 'blocked', data: answer })
    return { status: 'blocked', run_id: context.runId, answer }
  }

  // The run must say it failed even when the failure was the storage itself;
  // what cannot be written is logged, and the original error is what the client gets.
  async #recordFailure (context: RunContext, stage: string | null, err: unknown): Promise<void> {
    try {
      if (!context.isRecorded(err)) context.recordError(stage, err)
      await context.flush('failed')
    } catch (recordingError) {
      this.#logger?.error({ err: recordingError, run_id: context.runId }, 'could not record that the run failed')
    }
  }

  // Errors we made carry a code and a status meant for clients; anything else
  // is internal, and its message (paths, stack) stays in the log.
  #describeError (err: unknown, runId: string | null): Omit<ErrorEvent, 'run_id' | 'stage'> {
    if (isCodedError(err) && err.statusCode >= 400 && err.statusCode < 600) {
      return { statusCode: err.statusCode, error: STATUS_CODES[err.statusCode] ?? 'Error', code: err.code, message: err.message }
    }
    this.#logger?.error({ err, run_id: runId }, 'pipeline run failed')
    return { statusCode: 500, error: 'Internal Server Error', code: 'INTERNAL_ERROR', message: 'internal server error' }
  }

  #observeGeneration (backend: string, ms: number): void {
    const seconds = ms / 1000
    const previous = this.#generationSeconds.get(backend)
    this.#generationSeconds.set(backend, previous === undefined ? seconds : previous * 0.8 + seconds * 0.2)
  }

  #retryAfterFor (backend: string): number {
    const seconds = this.#generationSeconds.get(backend) ?? DEFAULT_GENERATION_SECONDS
    return Math.min(MAX_RETRY_AFTER_SECONDS, Math.max(1, Math.ceil(seconds)))
  }
}

// How stale the on-disk trail of a running run may get before a stage end writes it.
const FLUSH_INTERVAL_MS = 250

type PendingChanges = Required<Pick<RunChanges, 'stages' | 'errors'>> & Pick<RunChanges, 'transformed_text'>

export interface RunContextOptions {
  runId: string
  request: RunRequest
  pipeline: PipelineDefinition
  providers: TextProviders
  outputs: readonly PlannedOutput[]
  storage: RunStorage
  signal: AbortSignal
  publicBaseUrl: string
  emit: (event: PipelineEvent) => void
  describeError: (err: unknown) => Omit<ErrorEvent, 'run_id' | 'stage'>
  observeGeneration: (backend: string, ms: number) => void
}

/**
 * What the stages of one run share: the request, the text as it moves from
 * stage to stage, the planned outputs, and step() to time, record and
 * announce each piece of work.
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
  blocked: Block | null = null
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
    if (pending && performance.now() - this.#lastWrite >= FLUSH_INTERVAL_MS) await this.flush()
  }

  /** Stops the run after the current stage: status "blocked", 403 with this stage, reason and codes. */
  block (stage: string, reason: string, codes: string[]): void {
    this.blocked ??= { stage, reason, codes }
  }

  /** Lists a stored output of the run and announces it with its URL. */
  async addStored (output: MediaOutput): Promise<void> {
    this.stored.push(output)
    const metadata = await this.storage.getMetadata(this.runId)
    this.emit({ type: 'media_stored', data: this.#mediaAnswer(metadata, output) })
  }

  observeGeneration (backend: string, ms: number): void {
    this.#options.observeGeneration(backend, ms)
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

  answer (metadata: RunMetadata, elapsedMs: number): ExecuteAnswer {
    const mediaOutputs = [...this.stored].sort((a, b) => a.index - b.index).map((o) => this.#mediaAnswer(metadata, o))
    return {
      status: 'success',
      run_id: this.runId,
      schema: this.request.schema,
      execution_mode: this.request.execution_mode,
      safety_level: this.request.safety_level,
      seed: this.request.seed,
      input_text: metadata.input_text,
      transformed_text: metadata.transformed_text,
      final_output: this.text,
      media_output: mediaOutputs[0] ?? null,
      media_outputs: mediaOutputs,
      stages: metadata.stages,
      execution_time_ms: Math.round(elapsedMs * 100) / 100
    }
  }

  #mediaAnswer (metadata: RunMetadata, output: MediaOutput): MediaOutputAnswer {
    return {
      config: output.config,
      status: 'success',
      run_id: this.runId,
      output: this.runId,
      media_stored: true,
      media_type: output.type,
      index: output.index,
      url: mediaUrl(metadata, output, this.#options.publicBaseUrl),
      filename: output.filename
    }
  }
}

/**
 * Width and height for an output: the config's default size, or, with an
 * aspect ratio, that shape at about the same area, in multiples of 64 as
 * diffusion models want them.
 */
export function outputSize (config: Pick<OutputConfig, 'defaults'>, aspectRatio: AspectRatio | null): { width: number, height: number } {
  const width = config.defaults?.width ?? DEFAULT_SIDE
  const height = config.defaults?.height ?? DEFAULT_SIDE
  if (aspectRatio === null) return { width, height }
  const [w, h] = aspectRatio.split(':').map(Number) as [number, number]
  const area = width * height
  const ratio = w / h
  const side = (value: number): number => Math.max(SIZE_STEP, Math.round(value / SIZE_STEP) * SIZE_STEP)
  return { width: side(Math.sqrt(area * ratio)), height: side(Math.sqrt(area / ratio)) }
}

/** Every default output of every pipeline must name an output config, or the service does not start. */
export function checkDefaultOutputs (pipelines: Map<string, PipelineDefinition>, backends: Pick<BackendRegistry, 'hasOutputConfig'>, pipelinesDir: string): void {
  for (const pipeline of pipelines.values()) {
    for (const [mode, names] of Object.entries(pipeline.default_outputs)) {
      const unknown = names.find((name) => !backends.hasOutputConfig(name))
      if (unknown !== undefined) {
        throw new PipelineDefinitionError(join(pipelinesDir, `${pipeline.name}.json`), `default_outputs.${mode}: no output config named ${unknown}`)
      }
    }
  }
}
