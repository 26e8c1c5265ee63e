import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { etagMatches, type MediaDelivery } from '../services/media/media-delivery.js'
import { THUMBNAIL_MIME_TYPES } from '../services/media/thumbnail-render.js'
import { thumbnailFormatFor, type Thumbnails } from '../services/media/thumbnails.js'
import type { MediaOutput } from '../schemas/run.js'
import { RangeNotSatisfiableError } from '../services/errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    mediaDelivery: MediaDelivery
    thumbnails: Thumbnails
  }
  interface FastifyReply {
    /** Answers with a stored output: conditional, ranged, cached, with its content headers. */
    sendMedia: (runId: string, output: MediaOutput, download: boolean) => Promise<FastifyReply>
    /** Answers with a thumbnail of a stored output, WebP or JPEG by the request's Accept; conditional, not ranged. */
    sendThumbnail: (runId: string, output: MediaOutput, width: number, download: boolean) => Promise<FastifyReply>
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

  const { thumbnails } = app.runstore
  app.decorate('thumbnails', thumbnails)
  app.decorateReply('sendThumbnail', async function sendThumbnail (this: FastifyReply, runId: string, output: MediaOutput, width: number, download: boolean) {
    const { headers } = this.request
    const format = thumbnailFormatFor(headers.accept)
    // Like the originals: the ETag names the content for good; Vary, because one URL answers two formats.
    const caching = { 'Cache-Control': 'public, max-age=31536000, immutable', Vary: 'Accept', 'X-Content-Type-Options': 'nosniff' }
    const expected = thumbnails.etag(output, width, format)
    if (headers['if-none-match'] !== undefined && etagMatches(headers['if-none-match'], expected)) {
      return await this.code(304).headers({ ...caching, ETag: expected }).send()
    }
    const thumbnail = await thumbnails.get(runId, output, width, format)
    const filename = `${output.filename.replace(/\.[^.]*$/, '')}.${width}.${format === 'webp' ? 'webp' : 'jpg'}`
    return await this.code(200).headers({
      ...caching,
      'Content-Type': THUMBNAIL_MIME_TYPES[format],
      'Content-Length': thumbnail.bytes.length,
      ETag: thumbnail.etag,
      'Content-Disposition': `${download ? 'attachment' : 'inline'}; filename="${filename}"`
    }).send(thumbnail.bytes)
  })
}, { name: 'media-delivery', dependencies: ['runstore'] })
