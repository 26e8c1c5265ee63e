import type { BlockedAnswer, ExecuteAnswer, PipelineSummary } from '../../schemas/pipeline.js'
import { EXECUTION_MODES, type ExecutionMode } from '../../schemas/run.js'
import type { BackendRegistry } from '../backends/registry.js'
import { describeError, isPublicError, ServiceStoppingError, type ErrorBody } from '../errors.js'
import type { RunStorage } from '../storage/run-storage.js'
import { blockedAnswer, executeAnswer } from './answers.js'
import type { ErrorEvent, PipelineEvent, PipelineEventListener } from './events.js'
import { chooseOutputs } from './output-choice.js'
import { outputPreferences, type PipelineDefinition } from './pipeline-definitions.js'
import { checkDefaultOutputs, prepareRun, type ExecuteRequest, type PreparedRun } from './prepare-run.js'
import { RunContext, type PipelineStage, type RunBlock } from './run-context.js'
import type { TextProviders } from './types.js'

export type ExecuteOutcome =
  | { status: 'completed', run_id: string, answer: ExecuteAnswer }
  | { status: 'blocked', run_id: string, answer: BlockedAnswer }
  /** run_id is null when the run could not even be created */
  | { status: 'failed', run_id: string | null, error: unknown, event: ErrorEvent }

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
  /** how often a running run's stage records are written at most (default 250 ms) */
  flushIntervalMs?: number | undefined
}

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
  #closing = false

  readonly #flushIntervalMs: number | undefined

  constructor (options: PipelineRunnerOptions) {
    this.#storage = options.storage
    this.#backends = options.backends
    this.#pipelines = options.pipelines
    this.#textProviders = options.textProviders
    this.#publicBaseUrl = options.publicBaseUrl ?? ''
    this.#logger = options.logger
    this.#flushIntervalMs = options.flushIntervalMs
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

  /** Each pipeline with its default outputs per mode, and what each mode would run now. */
  listPipelines (): PipelineSummary[] {
    return [...this.#pipelines.values()].map((p) => ({
      name: p.name,
      title: p.title,
      description: p.description,
      default_outputs: mapModes((mode) => outputPreferences(p.default_outputs[mode]).map((entry) => entry.length === 1 ? entry[0]! : entry)),
      output_choices: mapModes((mode) => chooseOutputs(p, mode, this.#backends))
    }))
  }

  textProviders (mode: ExecutionMode): TextProviders {
    return this.#textProviders[mode]
  }

  /**
   * Checks the request and reserves a queue place for each output config,
   * writing nothing (see prepareRun): PIPELINE_NOT_FOUND and
   * OUTPUT_CONFIG_NOT_FOUND (404), BACKEND_UNAVAILABLE, QUEUE_FULL (with
   * retryAfterSeconds) and SERVICE_STOPPING (503).
   */
  prepare (input: ExecuteRequest): PreparedRun {
    if (this.#closing) throw new ServiceStoppingError()
    return prepareRun(input, this.#pipelines, this.#backends)
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
        seed: request.seed,
        output_choices: request.output_choices
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
        flushIntervalMs: this.#flushIntervalMs,
        emit,
        describeError: (err) => this.#describeError(err, metadata.run_id)
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
          output_choices: request.output_choices,
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
      const answer = executeAnswer({ request, finalOutput: context.text, stored: context.stored }, final, performance.now() - started, this.#publicBaseUrl)
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

  async #endBlocked (context: RunContext, block: RunBlock): Promise<ExecuteOutcome> {
    await context.flush('blocked')
    const answer = blockedAnswer(context.runId, block)
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

  // What a client may see of a failure; an internal one is logged with the run it broke.
  #describeError (err: unknown, runId: string | null): ErrorBody {
    if (!isPublicError(err)) this.#logger?.error({ err, run_id: runId }, 'pipeline run failed')
    return describeError(err)
  }
}

function mapModes<T> (value: (mode: ExecutionMode) => T): Record<ExecutionMode, T> {
  return Object.fromEntries(EXECUTION_MODES.map((mode) => [mode, value(mode)])) as Record<ExecutionMode, T>
}
