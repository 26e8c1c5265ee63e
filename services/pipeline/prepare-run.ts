import { randomInt } from 'node:crypto'
import { join } from 'node:path'
import type { AspectRatio } from '../../schemas/pipeline.js'
import type { ExecutionMode, SafetyLevel } from '../../schemas/run.js'
import type { OutputConfig } from '../backends/output-configs.js'
import type { BackendRegistry } from '../backends/registry.js'
import type { GeneratorBackend } from '../backends/types.js'
import { PipelineDefinitionError, PipelineNotFoundError } from '../errors.js'
import type { QueueReservation } from '../generation/queue.js'
import type { PipelineDefinition } from './pipeline-definitions.js'

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

const DEFAULT_SIDE = 1024
const SIZE_STEP = 64

/**
 * Decides every default of a request (execution mode eco, safety level kids,
 * the pipeline's default outputs for the mode, a random seed, the pipeline's
 * negative prompt) and reserves a queue place for each output config,
 * writing nothing. Throws PIPELINE_NOT_FOUND and OUTPUT_CONFIG_NOT_FOUND
 * (404), BACKEND_UNAVAILABLE and QUEUE_FULL (503, with retryAfterSeconds);
 * a refused request keeps no place.
 */
export function prepareRun (input: ExecuteRequest, pipelines: Map<string, PipelineDefinition>, backends: Pick<BackendRegistry, 'resolve'>): PreparedRun {
  const pipeline = pipelines.get(input.schema)
  if (pipeline === undefined) throw new PipelineNotFoundError(input.schema.slice(0, 100))
  const mode = input.execution_mode ?? 'eco'
  const names = input.output_configs ?? pipeline.default_outputs[mode]
  const aspectRatio = input.aspect_ratio ?? null
  const resolved = names.map((name) => backends.resolve(name))
  const outputs: PlannedOutput[] = []
  const release = (): void => { for (const output of outputs) output.reservation.release() }
  try {
    for (const { config, backend, queue } of resolved) {
      const { width, height } = outputSize(config, aspectRatio)
      outputs.push({ config, backend, width, height, reservation: queue.reserve() })
    }
  } catch (err) {
    release()
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
    release
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
