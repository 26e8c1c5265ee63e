import { Type } from '@sinclair/typebox'
import { RunId } from './run.js'

/** Names of pipelines, output configs and backends: letters, digits, _ . -, not starting with _ . - */
export const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]*$'
export const NAME_MAX_LENGTH = 100
export const Name = Type.String({ minLength: 1, maxLength: NAME_MAX_LENGTH, pattern: NAME_PATTERN })
const NAME_REGEX = new RegExp(NAME_PATTERN)

/** The check of the Name schema, for values the validator does not see (multipart fields). */
export function isName (value: unknown): value is string {
  return typeof value === 'string' && value.length <= NAME_MAX_LENGTH && NAME_REGEX.test(value)
}

export const ErrorResponse = Type.Object({
  statusCode: Type.Integer({ examples: [404] }),
  error: Type.String({ examples: ['Not Found'] }),
  code: Type.String({ examples: ['RUN_NOT_FOUND'] }),
  message: Type.String({ examples: ['run 0193f1e2-7c4a-7b9e-8d2f-4c1a2b3c4d5e not found'] })
}, { description: 'every error answer has this shape' })

export const RunIdParams = Type.Object({ run_id: RunId })

/** Error answers a route can give, by status, for its OpenAPI description. */
export function errorResponses<C extends number> (...codes: C[]): Record<C, typeof ErrorResponse> {
  return Object.fromEntries(codes.map((code) => [code, ErrorResponse])) as Record<C, typeof ErrorResponse>
}

/** What every route that writes may answer when the disk refuses: 507 INSUFFICIENT_STORAGE, 503 STORAGE_UNAVAILABLE. */
export const STORAGE_FAILURES = [503, 507] as const

/** A binary body, for the content of an OpenAPI response. */
export const BINARY = { schema: { type: 'string', format: 'binary' } }
