import type { PipelineStage, RunContext } from '../run-context.js'
import type { SafetyVerdict, TranslationResult } from '../types.js'
import { safetyReport } from './safety-report.js'

/**
 * Stage 1: the input is translated to English (generators and the later
 * stages work in English) and checked against the run's safety level. A
 * blocked input ends the run here, before any prompt is made from it.
 */
export class PreInterceptionStage implements PipelineStage {
  readonly name = 'pre_interception'

  async run (context: RunContext): Promise<void> {
    const { translator, safety } = context.providers
    let translation!: TranslationResult
    await context.step('translation', async () => {
      translation = await translator.translate(context.text, context.signal)
      return {
        output: translation.output,
        provider: translation.provider,
        model: translation.model,
        details: { translated: translation.translated, source_language: translation.source_language, ...translation.details }
      }
    })
    const original = context.text
    context.text = translation.output

    // The child's own words are checked with the translation: a translation
    // that softens a word must not hide it from the German lists.
    const checked = translation.output === original ? original : `${original}\n${translation.output}`
    let verdict!: SafetyVerdict
    await context.step('safety', async () => {
      verdict = await safety.check(checked, context.request.safety_level, { stage: 'input' }, context.signal)
      return safetyReport(verdict, checked)
    })
    if (!verdict.allowed) context.block('safety', verdict.reason ?? BLOCKED_REASON, verdict.codes)
  }
}

export const BLOCKED_REASON = 'This idea is not something we can make a picture of here. Let\'s try another one!'
