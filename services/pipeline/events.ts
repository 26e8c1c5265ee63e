import type { BlockedAnswer, ExecuteAnswer, MediaOutputAnswer, OutputChoices } from '../../schemas/pipeline.js'
import type { ExecutionMode, SafetyLevel, StageRecord } from '../../schemas/run.js'
import type { ErrorBody } from '../errors.js'

export interface RunCreatedEvent {
  run_id: string
  schema: string
  execution_mode: ExecutionMode
  safety_level: SafetyLevel
  seed: number
  output_configs: string[]
  /** why these output configs: the defaults passed over on the way */
  output_choices: OutputChoices
  stages: string[]
}

/** How a run failed: the error answer's body, with the run and the step. */
export interface ErrorEvent extends ErrorBody {
  /** null when the run could not even be created */
  run_id: string | null
  /** the step that failed; null when it happened outside one */
  stage: string | null
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
