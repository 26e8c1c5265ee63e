import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { MediaDelivery } from '../services/media/media-delivery.js'
import type { MediaOutput } from '../schemas/run.js'
import { RangeNotSatisfiableError } from '../services/errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    mediaDelivery: MediaDelivery
  }
  interface FastifyReply {
    /** Answers with a stored output: conditional, ranged, cached, with its content headers. */
    sendMedia: (runId: string, output: MediaOutput, download: boolean) => Promise<FastifyReply>
  }
}

export default fp(async function mediaDeliveryPlugin (app) {
  const delivery = app.runstore.mediaDelivery
  app.decorate('mediaDelivery', delivery)
  app.decorateReply('sendMedia', async function sendMedia (this: FastifyReply, runId: string, output: MediaOutput, download: boolean) {
    const request: FastifyRequest = this.request
    const { headers } = request
    let answer
    try {
      answer = await delivery.deliver(runId, output, {
        range: headers.range,
        ifNoneMatch: headers['if-none-match'],
        ifModifiedSince: headers['if-modified-since'],
        ifRange: headers['if-range'] as string | undefined,
        download
      })
    } catch (err) {
      // A 416 names the file's length, so the client can ask again (RFC 9110); the error handler answers the rest.
      if (err instanceof RangeNotSatisfiableError) void this.header('Content-Range', `bytes */${output.file_size_bytes}`)
      throw err
    }
    return await this.code(answer.statusCode).headers(answer.headers).send(answer.body ?? undefined)
  })
}, { name: 'media-delivery', dependencies: ['runstore'] })
