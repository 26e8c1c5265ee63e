import type { BlockedAnswer, ExecuteAnswer, MediaOutputAnswer } from '../../schemas/pipeline.js'
import type { MediaOutput, RunMetadata } from '../../schemas/run.js'
import { mediaUrl } from '../media/media-url.js'
import type { RunRequest } from './prepare-run.js'

/** What a finished run hands to its answer, beside its metadata. */
export interface FinishedRun {
  request: RunRequest
  /** the text the last stage passed on */
  finalOutput: string
  /** the outputs stored by this run, in any order */
  stored: readonly MediaOutput[]
}

/** The 200 answer of a completed run, with the URL of every output it stored. */
export function executeAnswer (run: FinishedRun, metadata: RunMetadata, elapsedMs: number, publicBaseUrl: string): ExecuteAnswer {
  const { request } = run
  const mediaOutputs = [...run.stored].sort((a, b) => a.index - b.index).map((o) => mediaAnswer(metadata, o, publicBaseUrl))
  return {
    status: 'success',
    run_id: metadata.run_id,
    schema: request.schema,
    execution_mode: request.execution_mode,
    safety_level: request.safety_level,
    seed: request.seed,
    input_text: metadata.input_text,
    transformed_text: metadata.transformed_text,
    final_output: run.finalOutput,
    media_output: mediaOutputs[0] ?? null,
    media_outputs: mediaOutputs,
    stages: metadata.stages,
    output_choices: request.output_choices,
    execution_time_ms: Math.round(elapsedMs * 100) / 100
  }
}

/** One stored output as answers and media_stored events show it: with its URL (relative when publicBaseUrl is empty). */
export function mediaAnswer (metadata: RunMetadata, output: MediaOutput, publicBaseUrl: string): MediaOutputAnswer {
  return {
    config: output.config,
    status: 'success',
    run_id: metadata.run_id,
    output: metadata.run_id,
    media_stored: true,
    media_type: output.type,
    index: output.index,
    url: mediaUrl(metadata, output, publicBaseUrl),
    filename: output.filename
  }
}

/** The 403 answer of a run a stage blocked. */
export function blockedAnswer (runId: string, block: { stage: string, reason: string, codes: string[] }): BlockedAnswer {
  return { status: 'blocked', run_id: runId, stage: block.stage, reason: block.reason, codes: block.codes }
}
