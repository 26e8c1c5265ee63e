import { Type, type Static } from '@sinclair/typebox'
import { MediaType } from './media.js'
import { Name } from './common.js'
import { OutputChoices } from './output-choices.js'
export { OutputChoices, SkippedOutput } from './output-choices.js'
import { EXECUTION_MODES, ExecutionMode, RunId, SAFETY_LEVELS, SafetyLevel, StageRecord } from './run.js'

export const ASPECT_RATIOS = ['1:1', '16:9', '3:2', '4:3', '5:4', '4:5', '3:4', '2:3', '9:16'] as const
export const AspectRatio = Type.Union(ASPECT_RATIOS.map((r) => Type.Literal(r)), {
  description: 'shape of images and videos; the output config\'s default area is kept'
})
export type AspectRatio = Static<typeof AspectRatio>

// additionalProperties: false with the app's removeAdditional strips fields it
// does not know instead of refusing them: older frontends send extra ones.
export const ExecuteBody = Type.Object({
  schema: Type.String({ ...Name, description: 'pipeline name, e.g. dada (GET /api/schema/pipelines lists them)' }),
  input_text: Type.String({ minLength: 1, maxLength: 20000, description: 'what the participant typed, in any language' }),
  execution_mode: Type.Optional(Type.Union(EXECUTION_MODES.map((m) => Type.Literal(m)), { default: 'eco', description: 'eco (local), fast (cloud), ultra' })),
  safety_level: Type.Optional(Type.Union(SAFETY_LEVELS.map((l) => Type.Literal(l)), { default: 'kids', description: 'kids is the strictest' })),
  user_id: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 200 }), Type.Null()])),
  output_configs: Type.Optional(Type.Array(Type.String(Name), {
    minItems: 1,
    maxItems: 8,
    uniqueItems: true,
    description: 'output configs to run, all of them, never replaced by others; when absent, the first entry of the pipeline\'s default outputs for the execution mode that can run now'
  })),
  seed: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'random per request when absent; recorded in the run' })),
  aspect_ratio: Type.Optional(AspectRatio),
  negative_prompt: Type.Optional(Type.String({ maxLength: 2000, description: 'what the generators should avoid (ComfyUI workflows); the pipeline\'s own when absent' }))
}, { additionalProperties: false })
export type ExecuteBody = Static<typeof ExecuteBody>

export const MediaOutputAnswer = Type.Object({
  config: Type.String({ examples: ['sd35_large'] }),
  status: Type.Union([Type.Literal('success'), Type.Literal('failed'), Type.Literal('blocked')]),
  run_id: RunId,
  output: Type.String({ description: 'the run id again, for frontends written against the seed' }),
  media_stored: Type.Boolean(),
  media_type: MediaType,
  index: Type.Integer({ minimum: 0, description: 'position in the run\'s outputs[]' }),
  url: Type.String({ examples: ['/api/media/image/0193f1e2-7c4a-7b9e-8d2f-4c1a2b3c4d5e/0'] }),
  filename: Type.String({ examples: ['output_image.png'] })
}, { description: 'one stored output, in the shape the seed\'s frontend reads' })
export type MediaOutputAnswer = Static<typeof MediaOutputAnswer>

export const ExecuteAnswer = Type.Object({
  status: Type.Literal('success'),
  run_id: RunId,
  schema: Type.String(),
  execution_mode: ExecutionMode,
  safety_level: SafetyLevel,
  seed: Type.Integer(),
  input_text: Type.String(),
  transformed_text: Type.Union([Type.String(), Type.Null()]),
  final_output: Type.Union([Type.String(), Type.Null()], { description: 'the prompt the generators got' }),
  media_output: Type.Union([MediaOutputAnswer, Type.Null()], { description: 'the first stored output' }),
  media_outputs: Type.Array(MediaOutputAnswer, { description: 'every stored output, in the order of outputs[]' }),
  stages: Type.Array(StageRecord),
  output_choices: OutputChoices,
  execution_time_ms: Type.Number()
})
export type ExecuteAnswer = Static<typeof ExecuteAnswer>

/** The 200 of POST /api/schema/pipeline/execute: the JSON answer, or the run's events with Accept: text/event-stream. */
export const ExecuteOkResponse = {
  description: 'the run completed: its prompt, stages and stored media',
  content: {
    'application/json': { schema: ExecuteAnswer },
    'text/event-stream': { schema: { type: 'string', description: 'event: <name>\\ndata: <json>\\n\\n, one frame per event' } }
  }
}

export const BlockedAnswer = Type.Object({
  status: Type.Literal('blocked'),
  run_id: RunId,
  stage: Type.String({ examples: ['safety', 'pre_output_safety', 'generation'] }),
  reason: Type.String({ description: 'a sentence a child understands' }),
  codes: Type.Array(Type.String(), { examples: [['violence.weapon']] })
}, { description: 'the run is kept with status "blocked"; nothing was generated after the stage that blocked' })
export type BlockedAnswer = Static<typeof BlockedAnswer>

const ModeDefaults = Type.Array(Type.Union([Type.String(), Type.Array(Type.String())]), {
  description: 'entries in order of preference; an entry is one output config or a group that runs together'
})

export const PipelineSummary = Type.Object({
  name: Type.String({ examples: ['dada'] }),
  title: Type.String(),
  description: Type.String(),
  default_outputs: Type.Object({
    eco: ModeDefaults,
    fast: ModeDefaults,
    ultra: ModeDefaults
  }, { description: 'per mode, the output configs in order of preference, as the pipeline file lists them' }),
  output_choices: Type.Object({
    eco: OutputChoices,
    fast: OutputChoices,
    ultra: OutputChoices
  }, { description: 'per mode, what a request without output_configs would run now, and why the entries before it would be passed over' })
})
export type PipelineSummary = Static<typeof PipelineSummary>

export const OutputConfigSummary = Type.Object({
  name: Type.String({ examples: ['sd35_large'] }),
  description: Type.String(),
  media_type: MediaType,
  backend: Type.String(),
  available: Type.Boolean(),
  unavailable_reason: Type.Union([Type.String(), Type.Null()])
})

export const TextProviderSummary = Type.Object({
  provider: Type.Union([Type.Literal('builtin'), Type.Literal('llm')]),
  model: Type.Union([Type.String(), Type.Null()]),
  llm_steps: Type.Array(Type.Union([Type.Literal('translation'), Type.Literal('safety'), Type.Literal('interception')]), { description: 'the steps the LLM runs (LLM_STEPS); the others are builtin' })
}, { description: 'what runs the text stages (translation, safety, interception) in this mode' })

export const PipelineList = Type.Object({
  pipelines: Type.Array(PipelineSummary),
  output_configs: Type.Array(OutputConfigSummary),
  execution_modes: Type.Object({ eco: TextProviderSummary, fast: TextProviderSummary, ultra: TextProviderSummary })
})
export type PipelineList = Static<typeof PipelineList>
