import createError from '@fastify/error'
import { STATUS_CODES } from 'node:http'

// Every failure a client can see has a stable code and an HTTP status, so the
// error handler only translates and never guesses. Services throw these; they
// never return null for "it went wrong".

export const InvalidRunIdError = createError<[string]>('INVALID_RUN_ID', 'run id %s is not a UUID', 400)
export const RunNotFoundError = createError<[string]>('RUN_NOT_FOUND', 'run %s not found', 404)
// A deleted run cannot come back over a run of the same id (copied in by hand, or restored already).
export const RunExistsError = createError<[string]>('RUN_EXISTS', 'a run %s exists already; nothing was restored over it', 409)
export const FileNotFoundError = createError<[string, string]>('FILE_NOT_FOUND', 'run %s has no file named %s', 404)
export const MediaNotReadyError = createError<[string, string]>('MEDIA_NOT_READY', 'run %s has no %s output yet; it is still running', 404)
export const MediaNotFoundError = createError<[string, string]>('MEDIA_NOT_FOUND', 'run %s has no such %s output', 404)
export const UnsupportedMediaError = createError<[string]>('UNSUPPORTED_MEDIA_TYPE', 'unsupported media: %s', 415)
// Bytes of an accepted format that are not whole (cut off, a broken chunk chain, a container that cannot be read):
// storing them would keep research data no one can open.
export const MediaCorruptError = createError<[string, string]>('MEDIA_CORRUPT', 'the %s file is truncated or corrupt: %s', 422)
// A decoder would need width × height pixels of memory: a small file can claim a size that takes a thumbnailer down.
export const ImageTooLargeError = createError<[number, number, number]>('IMAGE_TOO_LARGE', 'the image is %s × %s pixels, more than the limit of %s pixels', 422)
export const MediaTypeMismatchError = createError<[string, string]>('MEDIA_TYPE_MISMATCH', 'declared media_type %s but the bytes are %s', 415)
export const MediaTooLargeError = createError<[number]>('MEDIA_TOO_LARGE', 'media is larger than the limit of %s bytes', 413)
export const InvalidDataError = createError<[string]>('INVALID_DATA', 'invalid data: %s', 400)
export const InvalidSourceError = createError<[string]>('INVALID_SOURCE', 'invalid media source: %s', 400)
export const IncompleteUploadError = createError<[string]>('INCOMPLETE_UPLOAD', 'upload incomplete: %s', 400)
export const SourceFailedError = createError<[string]>('SOURCE_FAILED', 'media source failed: %s', 502)
export const SourceTimeoutError = createError<[string]>('SOURCE_TIMEOUT', 'media source timed out: %s', 504)
export const FetchForbiddenError = createError<[string]>('FETCH_FORBIDDEN', 'fetching %s is not allowed', 400)
export const RangeNotSatisfiableError = createError<[string, number]>('RANGE_NOT_SATISFIABLE', 'the range %s is not within the file\'s %s bytes', 416)
export const InvalidStatusTransitionError = createError<[string, string]>('INVALID_STATUS', 'a run cannot go from %s to %s', 409)

// The server's disk, not the request, failed a write: nothing was stored, and the same request may
// succeed later. The errno and the path (the cause) stay in the log; clients get plain words.
export const InsufficientStorageError = createError<[{ cause: unknown }?]>('INSUFFICIENT_STORAGE', 'the server has no room left to store this: nothing was stored; try again once space is freed', 507)
export const IndexDamagedError = createError('INDEX_DAMAGED', 'the run index is damaged and cannot list runs; the run folders are intact, and the index is built again at the next start (or with `runstore reindex`)', 503)
export const StorageUnavailableError = createError<[{ cause: unknown }?]>('STORAGE_UNAVAILABLE', 'the server cannot write to its storage at the moment (read-only or failing): nothing was changed; try again later', 503)

// Generator backends and pipeline stages.
export const BackendUnavailableError = createError<[string, string]>('BACKEND_UNAVAILABLE', 'backend %s is not available: %s', 503)
// Every entry of a mode's default outputs is skipped (not configured, down); the message names each and why.
export const NoOutputAvailableError = createError<[string, string, string]>('BACKEND_UNAVAILABLE', 'nothing the %s pipeline makes in %s mode can run now: %s', 503)
export const BackendFailedError = createError<[string, string]>('BACKEND_FAILED', 'backend %s failed: %s', 502)
export const BackendTimeoutError = createError<[string, string]>('BACKEND_TIMEOUT', 'backend %s timed out: %s', 504)
export const GenerationBlockedError = createError<[string, string]>('GENERATION_BLOCKED', 'backend %s refused the prompt: %s', 403)

export interface CodedError extends Error {
  code: string
  statusCode: number
  /** a refusal that passes with time (QUEUE_FULL): seconds to wait, sent as Retry-After */
  retryAfterSeconds?: number
}

export function isCodedError (err: unknown): err is CodedError {
  return err instanceof Error &&
    typeof (err as Partial<CodedError>).code === 'string' &&
    typeof (err as Partial<CodedError>).statusCode === 'number'
}

/** Every answer that is not a success, and the error event of a run. */
export interface ErrorBody {
  statusCode: number
  /** the status's reason phrase, e.g. Not Found */
  error: string
  code: string
  message: string
}

export function errorBody (statusCode: number, code: string, message: string): ErrorBody {
  return { statusCode, error: STATUS_CODES[statusCode] ?? 'Error', code, message }
}

/** A coded error with an error status: its message is meant for clients. */
export function isPublicError (err: unknown): err is CodedError {
  return isCodedError(err) && err.statusCode >= 400 && err.statusCode < 600
}

/**
 * What a client is told of a failure. Errors we made carry a code and a
 * status meant for clients; anything else is internal, and its message
 * (paths, stack) stays in the log.
 */
export function describeError (err: unknown): ErrorBody {
  return isPublicError(err) ? errorBody(err.statusCode, err.code, err.message) : errorBody(500, 'INTERNAL_ERROR', 'internal server error')
}

/** What a run's errors[] keeps of a failure: its code and message, never a stack or a path. */
export function errorRecord (err: unknown): { code: string, message: string } {
  if (isCodedError(err)) return { code: err.code, message: err.message }
  return { code: 'INTERNAL_ERROR', message: 'internal error' }
}

// ComfyUI backend.
export const ComfyuiPromptNotFoundError = createError<[string]>('COMFYUI_PROMPT_NOT_FOUND', 'ComfyUI has no prompt %s: it is not queued, not running and not in its history (wrong id, deleted, or ComfyUI restarted)', 404)
export const ComfyuiFileMissingError = createError<[string]>('COMFYUI_FILE_MISSING', 'ComfyUI no longer has the file %s', 502)
export const InvalidWorkflowError = createError<[string]>('INVALID_WORKFLOW', 'invalid ComfyUI workflow: %s', 500)

// Pipeline definition files (configs/pipelines/*.json): a broken file stops startup with its name and field.
export const PipelineDefinitionError = createError<[string, string]>('INVALID_PIPELINE_DEFINITION', 'pipeline file %s is invalid: %s', 500)

// Output configs, pipelines and the generation queue.
export const OutputConfigNotFoundError = createError<[string]>('OUTPUT_CONFIG_NOT_FOUND', 'unknown output config %s', 404)
export const OutputConfigError = createError<[string, string]>('INVALID_OUTPUT_CONFIG', 'output config file %s is invalid: %s', 500)
export const PipelineNotFoundError = createError<[string]>('PIPELINE_NOT_FOUND', 'unknown schema (pipeline) %s', 404)
const QueueFull = createError<[string]>('QUEUE_FULL', 'too many generations are waiting for %s; try again shortly', 503)
/** A backend's queue is full; it carries about one generation's time there, which the error handler sends as Retry-After. */
export class QueueFullError extends QueueFull {
  readonly retryAfterSeconds: number
  readonly backend: string

  constructor (backend: string, retryAfterSeconds: number) {
    super(backend)
    this.backend = backend
    this.retryAfterSeconds = retryAfterSeconds
  }
}

// Admin routes.
export const AdminDisabledError = createError('ADMIN_DISABLED', 'admin routes are off: set ADMIN_TOKEN to use them', 403)
export const AdminUnauthorizedError = createError('ADMIN_UNAUTHORIZED', 'this route needs Authorization: Bearer <ADMIN_TOKEN>', 401)

// GET /metrics, when METRICS_TOKEN is set.
export const MetricsUnauthorizedError = createError('METRICS_UNAUTHORIZED', 'this route needs Authorization: Bearer <METRICS_TOKEN>', 401)

// The pipeline runner.
export const ServiceStoppingError = createError('SERVICE_STOPPING', 'the service is shutting down; try again shortly', 503)

const ServiceOverloaded = createError('SERVICE_OVERLOADED', 'the service is overloaded; try again in a few seconds', 503)
/** The event loop is saturated (OVERLOAD_* settings): refused before any work, with Retry-After. */
export class ServiceOverloadedError extends ServiceOverloaded {
  readonly retryAfterSeconds: number

  constructor (retryAfterSeconds: number) {
    super()
    this.retryAfterSeconds = retryAfterSeconds
  }
}

// Listing runs (GET /api/runs).
export const InvalidCursorError = createError<[string]>('INVALID_CURSOR', 'cursor %s was not given out by this service; start again without one', 400)
export const InvalidRunFilterError = createError<[string]>('INVALID_FILTER', 'invalid filter: %s', 400)

// The HTTP layer: requests refused before any route sees them (plugins/http-protocol.ts).
export const BadRequestSyntaxError = createError<[string]>('BAD_REQUEST_SYNTAX', 'the request is not valid HTTP/1.1: %s', 400)
export const HeadersTooLargeError = createError<[number]>('HEADERS_TOO_LARGE', 'the request line and headers are larger than the limit of %s bytes', 431)
export const ChunkExtensionsTooLargeError = createError('CHUNK_EXTENSIONS_TOO_LARGE', 'the chunk extensions of the request body are too large', 413)
export const RequestTimeoutError = createError('REQUEST_TIMEOUT', 'the request did not arrive in time', 408)
export const MissingHostError = createError('MISSING_HOST', 'an HTTP/1.1 request needs a Host header', 400)
export const ExpectationFailedError = createError<[string]>('EXPECTATION_FAILED', 'the expectation %s cannot be met: only 100-continue is understood', 417)
// The trash (GET /api/trash, POST /api/trash/:run_id/restore).
export const TrashedRunNotFoundError = createError<[string]>('TRASHED_RUN_NOT_FOUND', 'run %s is not in the trash (never deleted, restored already, or the trash was emptied)', 404)
// Bulk exports (GET /api/exports).
export const InvalidExportFormatError = createError<[string]>('INVALID_EXPORT_FORMAT', 'formats: %s', 400)
// Thumbnails and posters (GET /api/media/<type>/:run_id/:index?width=N).
export const InvalidThumbnailWidthError = createError<[string, string]>('INVALID_WIDTH', 'width %s is not offered; use one of %s', 400)
// The original cannot be read as a picture (a format sharp does not read, damaged or missing on disk): the original itself still answers.
export const ThumbnailFailedError = createError<[string, string]>('THUMBNAIL_FAILED', 'no thumbnail can be made of %s: %s', 422)
// Archives (runstore archive | restore, POST /api/archives/restore).
export const RunArchivedError = createError<[string, string]>('RUN_ARCHIVED', 'run %s is archived in %s; restore it (POST /api/archives/restore or `runstore restore <run_id>`) to read it', 404)
export const ArchivedRunNotFoundError = createError<[string]>('ARCHIVED_RUN_NOT_FOUND', 'no archive holds %s (never archived, restored already, or its archive was pruned)', 404)
// A run's bytes in its archive no longer match the manifest: nothing of it is restored.
export const ArchiveDamagedError = createError<[string, string]>('ARCHIVE_DAMAGED', 'archive %s is damaged: %s; nothing of the run was restored', 500)
