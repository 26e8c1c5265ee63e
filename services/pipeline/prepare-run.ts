import { randomInt } from 'node:crypto'
import { join } from 'node:path'
import type { AspectRatio, OutputChoices, SkippedOutput } from '../../schemas/pipeline.js'
import type { ExecutionMode, SafetyLevel } from '../../schemas/run.js'
import type { OutputConfig } from '../backends/output-configs.js'
import type { BackendRegistry } from '../backends/registry.js'
import type { GeneratorBackend } from '../backends/types.js'
import { PipelineDefinitionError, PipelineNotFoundError, QueueFullError } from '../errors.js'
import type { QueueReservation } from '../generation/queue.js'
import { noOutputCanRun, unavailableEntry } from './output-choice.js'
import { outputPreferences, type PipelineDefinition } from './pipeline-definitions.js'

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
  /** where output_configs came from, and the defaults passed over on the way (recorded in the run and its answer) */
  output_choices: OutputChoices
}

/** One output config of a run, with its place in its backend's queue already taken. */
export interface PlannedOutput {
  config: OutputConfig
  backend: GeneratorBackend
  width: number
  height: number
  reservation: QueueReservation
  /** tells the backends how its generation ended (a failure marks the backend down for a while) */
  noteResult: (error: unknown) => void
}

/** What prepareRun needs of the backend registry. */
export type OutputResolver = Pick<BackendRegistry, 'resolve' | 'availability' | 'queue' | 'noteGeneration'>

/** A validated request holding its queue places; run it with execute() or give the places back with release(). */
export interface PreparedRun {
  readonly request: RunRequest
  readonly pipeline: PipelineDefinition
  readonly outputs: readonly PlannedOutput[]
  release: () => void
}

const DEFAULT_SIDE = 1024
const SIZE_STEP = 64

/**
 * Decides every default of a request (execution mode eco, safety level kids,
 * the first entry of the pipeline's default outputs for the mode that can run
 * now, a random seed, the pipeline's negative prompt) and reserves a queue
 * place for each output config, writing nothing. Output configs the request
 * names are taken as they are, never replaced. Throws PIPELINE_NOT_FOUND and
 * OUTPUT_CONFIG_NOT_FOUND (404), BACKEND_UNAVAILABLE and QUEUE_FULL (503,
 * with retryAfterSeconds) when nothing can run; a refused request keeps no place.
 */
export function prepareRun (input: ExecuteRequest, pipelines: Map<string, PipelineDefinition>, backends: OutputResolver): PreparedRun {
  const pipeline = pipelines.get(input.schema)
  if (pipeline === undefined) throw new PipelineNotFoundError(input.schema.slice(0, 100))
  const mode = input.execution_mode ?? 'eco'
  const aspectRatio = input.aspect_ratio ?? null
  const { outputs, choices } = input.output_configs === undefined
    ? planDefaults(pipeline, mode, aspectRatio, backends)
    : { outputs: planOutputs(input.output_configs, aspectRatio, backends), choices: { source: 'request' as const, chosen: input.output_configs, skipped: [] } }
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
      negative_prompt: input.negative_prompt ?? pipeline.negative_prompt ?? '',
      output_choices: choices
    },
    pipeline,
    outputs,
    release: () => { releaseAll(outputs) }
  }
}

/** The first entry of the mode's preference list that can run now, with its places taken, and the entries passed over. */
function planDefaults (pipeline: PipelineDefinition, mode: ExecutionMode, aspectRatio: AspectRatio | null, backends: OutputResolver): { outputs: PlannedOutput[], choices: OutputChoices } {
  const skipped: SkippedOutput[] = []
  for (const entry of outputPreferences(pipeline.default_outputs[mode])) {
    const skip = unavailableEntry(entry, backends)
    if (skip !== null) {
      skipped.push(skip)
      continue
    }
    try {
      return { outputs: planOutputs(entry, aspectRatio, backends), choices: { source: 'default_outputs', chosen: entry, skipped } }
    } catch (err) {
      // Two configs of one entry on the same backend may find room for one place and not for both.
      if (!(err instanceof QueueFullError)) throw err
      const config = entry.find((name) => backends.resolve(name).config.backend === err.backend)!
      skipped.push({ output_configs: entry, config, backend: err.backend, reason: 'queue_full', detail: err.message })
    }
  }
  throw noOutputCanRun(pipeline.name, mode, skipped, (backend) => backends.queue(backend).retryAfterSeconds)
}

/** Every named config with its queue place taken, or none: a refusal gives back the places already taken. */
function planOutputs (names: readonly string[], aspectRatio: AspectRatio | null, backends: OutputResolver): PlannedOutput[] {
  const resolved = names.map((name) => backends.resolve(name))
  const outputs: PlannedOutput[] = []
  try {
    for (const { config, backend, queue } of resolved) {
      const { width, height } = outputSize(config, aspectRatio)
      const noteResult = (error: unknown): void => { backends.noteGeneration(backend.name, error) }
      outputs.push({ config, backend, width, height, reservation: queue.reserve(), noteResult })
    }
  } catch (err) {
    releaseAll(outputs)
    throw err
  }
  return outputs
}

function releaseAll (outputs: readonly PlannedOutput[]): void {
  for (const output of outputs) output.reservation.release()
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
    for (const [mode, outputs] of Object.entries(pipeline.default_outputs)) {
      const unknown = outputPreferences(outputs).flat().find((name) => !backends.hasOutputConfig(name))
      if (unknown !== undefined) {
        throw new PipelineDefinitionError(join(pipelinesDir, `${pipeline.name}.json`), `default_outputs.${mode}: no output config named ${unknown}`)
      }
    }
  }
}
