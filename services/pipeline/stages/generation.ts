import type { GenerationRequest } from '../../backends/types.js'
import { BackendFailedError, isCodedError } from '../../errors.js'
import { storeGeneratedMedia, type StoredGeneration } from '../../generation/store-generated.js'
import type { PlannedOutput } from '../prepare-run.js'
import type { PipelineStage, RunContext, StepReport } from '../run-context.js'

const REFUSED = 'GENERATION_BLOCKED'

/**
 * Stage 4: every output config of the run goes to its backend through the
 * backend's queue (the place was reserved before the run was created), and
 * each piece of media is stored as it arrives. Output configs run side by
 * side; one that fails keeps what it stored and does not stop the others,
 * and the run fails with the first failure once all are done.
 */
export class GenerationStage implements PipelineStage {
  readonly name = 'generation'

  async run (context: RunContext): Promise<void> {
    // Backends take long and may not come back: the trail so far goes to disk
    // first, unless every generator is in-process, when the final write follows in milliseconds.
    if (context.outputs.some((planned) => planned.backend.inProcess !== true)) await context.flush()
    const results = await Promise.allSettled(context.outputs.map(async (planned) => { await generate(context, planned) }))
    const failures = results.flatMap((r) => r.status === 'rejected' ? [r.reason as unknown] : [])
    if (failures.length === 0) return
    const failure = failures.find((f) => !isRefusal(f))
    if (failure !== undefined) throw failure
    // Every failure was a backend's own moderation refusing the prompt: the run is blocked, not broken.
    const refusal = failures[0] as Error & { code: string }
    context.block('generation', refusal.message, [refusal.code])
  }
}

async function generate (context: RunContext, planned: PlannedOutput): Promise<void> {
  const { config, backend, reservation, width, height } = planned
  const request: GenerationRequest = {
    run_id: context.runId,
    prompt: context.text,
    negative_prompt: context.request.negative_prompt,
    seed: context.request.seed,
    width,
    height,
    params: config.params,
    signal: context.signal
  }
  await context.step('generation', async () => {
    const queued = performance.now()
    let queueWaitMs = 0
    const stored: StoredGeneration = await reservation.run(async () => {
      queueWaitMs = performance.now() - queued
      return await storeGeneratedMedia(context.storage, context.runId, backend.generate(request), {
        config: config.name,
        backend: backend.name,
        onStored: async (output) => { await context.addStored(output) }
      })
    })
    // A backend that ends without media must not end as a success without a picture.
    const failure = stored.error ?? (stored.outputs.length === 0 ? new BackendFailedError(backend.name, 'it finished without any media') : null)
    planned.noteResult(failure)
    const filenames = stored.outputs.map((o) => o.filename)
    const configuredModel = typeof config.params.model === 'string' ? config.params.model : null
    const report: StepReport = {
      output: filenames.length > 0 ? filenames.join(', ') : null,
      provider: backend.name,
      model: stored.outputs[0]?.source.model ?? configuredModel,
      details: {
        config: config.name,
        media_type: config.media_type,
        width,
        height,
        seed: context.request.seed,
        negative_prompt: context.request.negative_prompt,
        queue_wait_ms: Math.round(queueWaitMs * 100) / 100,
        outputs: stored.outputs.map((o) => ({ index: o.index, filename: o.filename, type: o.type }))
      }
    }
    if (failure !== null) return { ...report, status: isRefusal(failure) ? 'blocked' : 'failed', error: failure }
    return report
  }, { config: config.name, media_type: config.media_type })
}

function isRefusal (err: unknown): boolean {
  return isCodedError(err) && err.code === REFUSED
}
