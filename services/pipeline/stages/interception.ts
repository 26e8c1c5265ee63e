import type { PipelineStage, RunContext } from '../run-context.js'
import type { TextStageResult } from '../types.js'

/** Stage 2: the pipeline ("schema") turns the prompt into its own; the result is transformed_text.txt. */
export class InterceptionStage implements PipelineStage {
  readonly name = 'interception'

  async run (context: RunContext): Promise<void> {
    let result!: TextStageResult
    await context.step('interception', async () => {
      result = await context.providers.interceptor.transform(context.text, context.pipeline, context.signal)
      context.setTransformedText(result.output)
      return { output: result.output, provider: result.provider, model: result.model, ...(result.details !== undefined ? { details: result.details } : {}) }
    })
    context.text = result.output
  }
}
