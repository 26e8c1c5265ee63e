import fp from 'fastify-plugin'
import type { FastifyError, FastifyRequest } from 'fastify'
import { THUMBNAIL_WIDTHS } from '../schemas/media-api.js'
import { describeError, errorBody, InvalidRunIdError, InvalidThumbnailWidthError, isPublicError, type ErrorBody } from '../services/errors.js'

/**
 * Every answer that is not a success is `{statusCode, error, code, message}`
 * (errorBody). Messages of errors we made (they carry a code and a status)
 * are meant for clients; anything else is an internal failure whose details
 * (stack, file paths) stay in the log. An error that carries
 * retryAfterSeconds (QUEUE_FULL, SERVICE_OVERLOADED) is sent with Retry-After.
 */
export default fp(async function errorsPlugin (app) {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const body = err.validation !== undefined ? validationBody(err, err.validation, request) : describeError(err)
    const retryAfter = isPublicError(err) ? err.retryAfterSeconds : undefined
    // A refusal that passes with time (QUEUE_FULL, SERVICE_OVERLOADED) is no failure: no stack, and cheap under a flood.
    if (body.statusCode >= 500 && retryAfter === undefined) request.log.error({ err }, 'request failed')
    else request.log.info({ code: body.code, message: body.message }, 'request refused')
    if (retryAfter !== undefined) void reply.header('Retry-After', String(retryAfter))
    // Errors describe a moment (MEDIA_NOT_READY turns into the image), never the resource: nothing may cache them.
    return reply.code(body.statusCode).type('application/json; charset=utf-8').header('Cache-Control', 'no-store').header('X-Content-Type-Options', 'nosniff').send(body)
  })

  app.setNotFoundHandler((request, reply) => {
    return reply.code(404).header('Cache-Control', 'no-store').send(errorBody(404, 'ROUTE_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`))
  })
}, { name: 'errors' })

// A run id that is not a UUID and a thumbnail width not offered have their own codes; any other schema failure is INVALID_REQUEST.
function validationBody (err: FastifyError, validation: NonNullable<FastifyError['validation']>, request: FastifyRequest): ErrorBody {
  const runId = err.validationContext === 'params' && validation.some((v) => v.instancePath === '/run_id')
  if (runId) return describeError(new InvalidRunIdError(JSON.stringify((request.params as { run_id?: string }).run_id ?? '').slice(0, 80)))
  const width = err.validationContext === 'querystring' && validation.some((v) => v.instancePath === '/width')
  if (width) return describeError(new InvalidThumbnailWidthError(JSON.stringify((request.query as { width?: unknown }).width ?? '').slice(0, 40), THUMBNAIL_WIDTHS.join(', ')))
  return errorBody(400, 'INVALID_REQUEST', err.message)
}
