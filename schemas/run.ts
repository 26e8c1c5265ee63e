import { Type, type Static } from '@sinclair/typebox'
import { MediaType } from './media.js'
import { OutputChoices } from './output-choices.js'

const Nullable = <T extends ReturnType<typeof Type.String> | ReturnType<typeof Type.Number> | ReturnType<typeof Type.Integer>>(schema: T) =>
  Type.Union([schema, Type.Null()])

export const RUN_STATUSES = ['created', 'running', 'completed', 'failed', 'blocked'] as const
export const RunStatus = Type.Union(RUN_STATUSES.map((s) => Type.Literal(s)), { description: 'created → running → completed | failed | blocked' })
export type RunStatus = Static<typeof RunStatus>

export const EXECUTION_MODES = ['eco', 'fast', 'ultra'] as const
export const ExecutionMode = Type.Union(EXECUTION_MODES.map((m) => Type.Literal(m)), { description: 'eco (local), fast (cloud), ultra' })
export type ExecutionMode = Static<typeof ExecutionMode>

export const SAFETY_LEVELS = ['kids', 'youth', 'adult', 'off'] as const
export const SafetyLevel = Type.Union(SAFETY_LEVELS.map((m) => Type.Literal(m)), { description: 'kids is the strictest' })
export type SafetyLevel = Static<typeof SafetyLevel>

export const UUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
export const RunId = Type.String({ pattern: UUID_PATTERN, description: 'UUID (version 7 for new runs, so ids sort by creation time)', examples: ['0193f1e2-7c4a-7b9e-8d2f-4c1a2b3c4d5e'] })

/** Where a stored output came from: kind plus whatever identifies it upstream. */
export const MediaSourceRecord = Type.Object({
  kind: Type.String({ description: 'upload, url, data, buffer, stream, file, comfyui, openai, openrouter, replicate, builtin, …' }),
  url: Type.Optional(Type.String()),
  prompt_id: Type.Optional(Type.String()),
  node_id: Type.Optional(Type.String()),
  original_filename: Type.Optional(Type.String()),
  subfolder: Type.Optional(Type.String()),
  model: Type.Optional(Type.String()),
  prediction_id: Type.Optional(Type.String()),
  declared_mime_type: Type.Optional(Type.String())
}, { additionalProperties: true, description: 'provenance of the bytes' })
export type MediaSourceRecord = Static<typeof MediaSourceRecord>

export const MediaOutput = Type.Object({
  index: Type.Integer({ minimum: 0, description: 'position in outputs[], 0-based' }),
  type: MediaType,
  filename: Type.String({ examples: ['output_image.png', 'output_image_2.png'] }),
  backend: Type.String({ examples: ['comfyui', 'openai', 'builtin', 'upload'] }),
  config: Type.String({ examples: ['sd35_large'] }),
  file_size_bytes: Type.Integer({ minimum: 0 }),
  format: Type.String({ examples: ['png', 'jpg', 'mp3', 'wav', 'mp4', 'glb'] }),
  mime_type: Type.String({ examples: ['image/png'] }),
  width: Nullable(Type.Integer()),
  height: Nullable(Type.Integer()),
  duration_seconds: Nullable(Type.Number()),
  sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  created_at: Type.String({ format: 'date-time' }),
  source: MediaSourceRecord
})
export type MediaOutput = Static<typeof MediaOutput>

export const StageRecord = Type.Object({
  stage: Type.String({ examples: ['translation', 'safety', 'interception', 'pre_output_safety', 'generation'] }),
  status: Type.String({ examples: ['completed', 'blocked', 'failed', 'skipped'] }),
  output: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  provider: Type.Optional(Type.String()),
  model: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  duration_ms: Type.Optional(Type.Number()),
  decision: Type.Optional(Type.Unknown()),
  started_at: Type.Optional(Type.String({ format: 'date-time' })),
  details: Type.Optional(Type.Unknown())
}, { additionalProperties: true })
export type StageRecord = Static<typeof StageRecord>

export const ErrorRecord = Type.Object({
  at: Type.String({ format: 'date-time' }),
  stage: Type.Optional(Type.String()),
  code: Type.String(),
  message: Type.String(),
  details: Type.Optional(Type.Unknown())
}, { additionalProperties: true })
export type ErrorRecord = Static<typeof ErrorRecord>

export const RunMetadata = Type.Object({
  metadata_version: Type.Literal(1),
  run_id: RunId,
  user_id: Type.Union([Type.String(), Type.Null()]),
  timestamp: Type.String({ format: 'date-time', description: 'creation time' }),
  updated_at: Type.String({ format: 'date-time' }),
  status: RunStatus,
  schema: Type.String({ description: 'pipeline name, e.g. dada' }),
  execution_mode: Type.String({ description: 'eco, fast or ultra' }),
  safety_level: Type.Union([Type.String(), Type.Null()]),
  input_text: Type.String(),
  transformed_text: Type.Union([Type.String(), Type.Null()]),
  seed: Type.Optional(Type.Union([Type.Integer(), Type.Null()])),
  output_choices: Type.Optional(OutputChoices),
  stages: Type.Array(StageRecord),
  outputs: Type.Array(MediaOutput),
  errors: Type.Array(ErrorRecord)
}, { description: 'the document stored as metadata.json' })
export type RunMetadata = Static<typeof RunMetadata>
