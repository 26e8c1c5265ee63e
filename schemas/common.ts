import { Type } from '@sinclair/typebox'
import { RunId } from './run.js'

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
