import { Type, type Static } from '@sinclair/typebox'
import { DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT } from '../services/storage/index/run-index.js'
import { BINARY, Name } from './common.js'
import { MEDIA_TYPES, MediaType } from './media.js'
import { ExecutionMode, RunId, RunStatus, SafetyLevel } from './run.js'

// What the /api/runs routes take and answer; the stored run document (RunMetadata) is in run.ts.

export const CreateRunBody = Type.Object({
  schema: Type.String({ ...Name, description: 'pipeline name, e.g. dada' }),
  execution_mode: ExecutionMode,
  input_text: Type.String({ minLength: 1, maxLength: 20000 }),
  user_id: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 200 }), Type.Null()])),
  safety_level: Type.Optional(SafetyLevel)
})
export type CreateRunBody = Static<typeof CreateRunBody>

export const PatchRunBody = Type.Object({
  transformed_text: Type.Optional(Type.String({ maxLength: 100000 })),
  status: Type.Optional(RunStatus)
}, {
  additionalProperties: false,
  // Fields it does not know are dropped (removeAdditional), so one of these must be there: a body of
  // only unknown fields changes nothing and is refused like {}, rather than rewriting the metadata.
  anyOf: [{ required: ['transformed_text'] }, { required: ['status'] }]
})
export type PatchRunBody = Static<typeof PatchRunBody>

const MediaFields = {
  config: Type.String({ ...Name, description: 'output config name the media belongs to' }),
  media_type: Type.Optional(MediaType),
  backend: Type.Optional(Type.String({ ...Name, description: 'what made the media; defaults to the source kind' }))
}

export const AddMediaJson = Type.Union([
  Type.Object({ source: Type.Literal('url'), url: Type.String({ format: 'uri', maxLength: 8192 }), ...MediaFields }),
  Type.Object({ source: Type.Literal('data'), data: Type.String({ minLength: 1, description: 'a data: URI or bare base64' }), ...MediaFields }),
  Type.Object({
    source: Type.Literal('comfyui'),
    prompt_id: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$', description: 'a prompt someone else submitted to COMFYUI_URL; every file it produced is stored' }),
    ...MediaFields
  })
])
export type AddMediaJson = Static<typeof AddMediaJson>

// No `type: object` on purpose: the multipart body is streamed by the handler
// and is not there for the validator; this describes it for OpenAPI.
export const AddMediaMultipart = Type.Unsafe({
  properties: {
    file: { type: 'string', format: 'binary', description: 'the media file (one)' },
    config: { type: 'string' },
    media_type: { type: 'string', enum: [...MEDIA_TYPES] },
    backend: { type: 'string' }
  },
  required: ['file', 'config']
})

const instant = (description: string) => Type.Union([
  Type.String({ format: 'date-time', examples: ['2025-11-04T14:00:00+01:00'] }),
  Type.String({ format: 'date', examples: ['2025-11-04'] })
], { description: `${description}: an ISO date-time with its zone, or a date (midnight UTC)` })

export const ListRunsQuery = Type.Object({
  user_id: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  schema: Type.Optional(Type.String({ ...Name, description: 'pipeline name, e.g. dada' })),
  backend: Type.Optional(Type.String({ ...Name, description: 'runs with an output made by this backend (with media_type: the same output)' })),
  media_type: Type.Optional(MediaType),
  status: Type.Optional(RunStatus),
  from: Type.Optional(instant('runs created at or after this')),
  to: Type.Optional(instant('runs created before this')),
  q: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'text the input or the transformed text contains, case-insensitive' })),
  archived: Type.Optional(Type.Union([Type.Literal('exclude'), Type.Literal('include'), Type.Literal('only')], { default: 'exclude', description: 'exclude: live runs only; include: archived runs too; only: archived runs only' })),
  order: Type.Optional(Type.Union([Type.Literal('desc'), Type.Literal('asc')], { default: 'desc', description: 'by creation time: desc, newest first, or asc, oldest first' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_LIST_LIMIT, default: DEFAULT_LIST_LIMIT })),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'next_cursor of the previous page, with the same filters and order' }))
})
export type ListRunsQuery = Static<typeof ListRunsQuery>

export const RunSummary = Type.Object({
  run_id: RunId,
  timestamp: Type.String({ format: 'date-time', description: 'creation time' }),
  updated_at: Type.String({ format: 'date-time' }),
  status: RunStatus,
  schema: Type.String({ examples: ['dada'] }),
  execution_mode: Type.String({ examples: ['eco'] }),
  user_id: Type.Union([Type.String(), Type.Null()]),
  input_text: Type.String(),
  transformed_text: Type.Union([Type.String(), Type.Null()]),
  output_count: Type.Integer({ minimum: 0 }),
  media_types: Type.Array(MediaType, { description: 'each type of the run\'s outputs once, in their order' }),
  backends: Type.Array(Type.String(), { description: 'each backend of the run\'s outputs once, in their order' }),
  archive: Type.Union([Type.String(), Type.Null()], { description: 'the archive holding the run (listed with archived=include or only); null while the run is live' }),
  thumbnail_url: Type.Union([Type.String(), Type.Null()], { description: 'the first image output, null when the run has none', examples: ['/api/media/image/0193f1e2-7c4a-7b9e-8d2f-4c1a2b3c4d5e/0'] }),
  url: Type.String({ description: 'the run\'s metadata', examples: ['/api/runs/0193f1e2-7c4a-7b9e-8d2f-4c1a2b3c4d5e'] })
}, { description: 'one run in a listing' })
export type RunSummary = Static<typeof RunSummary>

export const IndexProgress = Type.Object({
  phase: Type.Union([Type.Literal('ready'), Type.Literal('building'), Type.Literal('catching-up')], { description: 'ready: every stored run is listed; building: the index is being built from the store, newest runs first, and listings lack the runs not reached yet; catching-up: the index is complete as far as this service knows and is being compared with the store (runs copied in by hand appear when it ends)' }),
  complete: Type.Boolean({ description: 'false while building: a listing may lack stored runs' }),
  indexed_runs: Type.Integer({ minimum: 0, description: 'runs the index holds now, archived ones included' }),
  stored_runs: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()], { description: 'live runs in the store, as a build or catch-up under way listed them; null when none is under way or before it listed them' })
}, { description: 'how complete the run index is' })

export const RunList = Type.Object({
  runs: Type.Array(RunSummary),
  next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'pass as cursor for the next page; null on the last page' }),
  total: Type.Integer({ minimum: 0, description: 'runs matching the filters; a lower bound when total_exact is false (counting stops after 500 matches)' }),
  total_exact: Type.Boolean(),
  index: IndexProgress
})
export type RunList = Static<typeof RunList>

/** The 200 of GET /api/runs/:run_id/export.zip. */
export const RunZipResponse = { description: 'a ZIP holding one folder named after the run', content: { 'application/zip': BINARY } }

/** The 204 of DELETE /api/runs/:run_id. */
export const DeletedResponse = { description: 'deleted', type: 'null' }
