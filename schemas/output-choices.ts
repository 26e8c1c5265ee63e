import { Type, type Static } from '@sinclair/typebox'

export const SKIP_REASONS = ['not_configured', 'down', 'queue_full'] as const

export const SkippedOutput = Type.Object({
  output_configs: Type.Array(Type.String(), { description: 'the entry of the preference list that was passed over (one config, or a group that runs together)' }),
  config: Type.String({ description: 'the config of that entry that cannot run now', examples: ['gpt_image'] }),
  backend: Type.String({ examples: ['openai'] }),
  reason: Type.Union(SKIP_REASONS.map((r) => Type.Literal(r)), {
    description: 'not_configured: its key or URL is not set; down: its last generation failed less than BACKEND_DOWN_MS ago; queue_full: its queue has no room'
  }),
  detail: Type.String({ description: 'the same in words', examples: ['OPENAI_API_KEY is not set'] })
}, { additionalProperties: false })
export type SkippedOutput = Static<typeof SkippedOutput>

export const OutputChoices = Type.Object({
  source: Type.Union([Type.Literal('default_outputs'), Type.Literal('request')], {
    description: 'request: the request named its output_configs, taken as they are; default_outputs: the pipeline\'s preference list for the mode'
  }),
  chosen: Type.Union([Type.Array(Type.String()), Type.Null()], { description: 'the output configs that run (null: none can run now)', examples: [['builtin_image']] }),
  skipped: Type.Array(SkippedOutput, { description: 'the entries before the chosen one, in order of preference, each with why it was passed over' })
}, { additionalProperties: false, description: 'which output configs a run got and why the ones preferred to them were passed over' })
export type OutputChoices = Static<typeof OutputChoices>
