import type { MediaType } from '../../../schemas/media.js'
import type { PipelineStage, RunContext } from '../run-context.js'
import type { SafetyVerdict } from '../types.js'
import { BLOCKED_REASON } from './pre-interception.js'
import { safetyReport } from './safety-report.js'

/**
 * Stage 3: the prompt about to go to the generators is checked again, once
 * for each media type the run will make (what is fine as a melody may not be
 * as a picture). Interception can add what the input did not have.
 */
export class PreOutputSafetyStage implements PipelineStage {
  readonly name = 'pre_output_safety'

  async run (context: RunContext): Promise<void> {
    const mediaTypes = [...new Set<MediaType>(context.outputs.map((o) => o.config.media_type))]
    for (const mediaType of mediaTypes) {
      let verdict!: SafetyVerdict
      await context.step('pre_output_safety', async () => {
        verdict = await context.providers.safety.check(context.text, context.request.safety_level, { stage: 'pre_output', media_type: mediaType }, context.signal)
        return safetyReport(verdict, context.text)
      }, { media_type: mediaType })
      if (!verdict.allowed) {
        context.block('pre_output_safety', verdict.reason ?? BLOCKED_REASON, verdict.codes)
        return
      }
    }
  }
}
