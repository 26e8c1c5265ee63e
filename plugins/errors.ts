import fp from 'fastify-plugin'
import { STATUS_CODES } from 'node:http'
import type { FastifyError } from 'fastify'
import { InvalidRunIdError, isCodedError, type CodedError } from '../services/errors.js'

/**
 * Every answer that is not a success is `{statusCode, error, code, message}`.
 * Messages of errors we made (they carry a code and a status) are meant for
 * clients; anything else is an internal failure whose details (stack, file
 * paths) stay in the log.
 */
export default fp(async function errorsPlugin (app) {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    let error: Pick<CodedError, 'statusCode' | 'code' | 'message'>
    if (err.validation !== undefined) {
      const runId = err.validationContext === 'params' && err.validation.some((v) => v.instancePath === '/run_id')
      error = runId
        ? new InvalidRunIdError(JSON.stringify((request.params as { run_id?: string }).run_id ?? '').slice(0, 80)) as CodedError
        : { statusCode: 400, code: 'INVALID_REQUEST', message: err.message }
    } else if (isCodedError(err) && err.statusCode >= 400 && err.statusCode < 600) {
      error = err as CodedError
    } else {
      error = { statusCode: 500, code: 'INTERNAL_ERROR', message: 'internal server error' }
    }
    if (error.statusCode >= 500) request.log.error({ err }, 'request failed')
    else request.log.info({ code: error.code, message: error.message }, 'request refused')
    // Errors describe a moment (MEDIA_NOT_READY turns into the image), never the resource: nothing may cache them.
    return reply.code(error.statusCode).type('application/json; charset=utf-8').header('Cache-Control', 'no-store').header('X-Content-Type-Options', 'nosniff').send({
      statusCode: error.statusCode,
      error: STATUS_CODES[error.statusCode] ?? 'Error',
      code: error.code,
      message: error.message
    })
  })

  app.setNotFoundHandler((request, reply) => {
    return reply.code(404).header('Cache-Control', 'no-store').send({
      statusCode: 404,
      error: 'Not Found',
      code: 'ROUTE_NOT_FOUND',
      message: `no route ${request.method} ${request.url.split('?')[0]}`
    })
  })
}, { name: 'errors' })
