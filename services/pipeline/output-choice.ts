import type { OutputChoices, SkippedOutput } from '../../schemas/pipeline.js'
import type { ExecutionMode } from '../../schemas/run.js'
import type { BackendRegistry } from '../backends/registry.js'
import { NoOutputAvailableError, QueueFullError } from '../errors.js'
import { outputPreferences, type PipelineDefinition } from './pipeline-definitions.js'

export type AvailabilitySource = Pick<BackendRegistry, 'availability'>

/**
 * What a mode of a pipeline would run now, reserving nothing: the first entry
 * of its default outputs whose configs can all run, and why each entry before
 * it cannot. `chosen` is null when none can.
 */
export function chooseOutputs (pipeline: PipelineDefinition, mode: ExecutionMode, backends: AvailabilitySource): OutputChoices {
  const skipped: SkippedOutput[] = []
  for (const entry of outputPreferences(pipeline.default_outputs[mode])) {
    const skip = unavailableEntry(entry, backends)
    if (skip === null) return { source: 'default_outputs', chosen: entry, skipped }
    skipped.push(skip)
  }
  return { source: 'default_outputs', chosen: null, skipped }
}

/** Why an entry cannot run now (its first config that cannot), or null when all of its configs can. */
export function unavailableEntry (entry: string[], backends: AvailabilitySource): SkippedOutput | null {
  for (const config of entry) {
    const availability = backends.availability(config)
    if (!availability.available) {
      return { output_configs: entry, config, backend: availability.backend, reason: availability.reason, detail: availability.detail }
    }
  }
  return null
}

/**
 * The refusal when every entry was skipped: QUEUE_FULL (with the shortest
 * Retry-After of the full queues) when a full queue was among the reasons,
 * since waiting helps then; otherwise BACKEND_UNAVAILABLE naming each entry
 * and why.
 */
export function noOutputCanRun (pipeline: string, mode: ExecutionMode, skipped: SkippedOutput[], retryAfterSeconds: (backend: string) => number): Error {
  const waits = skipped.filter((s) => s.reason === 'queue_full').map((s) => ({ backend: s.backend, seconds: retryAfterSeconds(s.backend) }))
  if (waits.length > 0) {
    const soonest = waits.reduce((a, b) => b.seconds < a.seconds ? b : a)
    return new QueueFullError(soonest.backend, soonest.seconds)
  }
  return new NoOutputAvailableError(pipeline, mode, skipped.map((s) => `${s.config} (${s.reason}: ${s.detail})`).join('; '))
}
