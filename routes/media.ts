import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply } from 'fastify'
import { errorResponses, RunIdParams } from '../schemas/common.js'
import { MEDIA_TYPES } from '../schemas/media.js'
import { DownloadQuery, MediaIndexParams, MediaInfo, MediaQuery, mediaAnswers, RunFileAnswers, RunFileParams } from '../schemas/media-api.js'
import type { MediaOutput } from '../schemas/run.js'
import { RunMetadata } from '../schemas/run.js'
import { mediaUrl } from '../services/media/media-url.js'

// Media elements and link checkers ask with HEAD; the contract lists it, so the document shows it.
const WITH_HEAD = { swagger: { exposeHeadRoute: true } }

const mediaRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { storage } = app
  const baseUrl = app.config.PUBLIC_BASE_URL ?? ''

  for (const type of MEDIA_TYPES) {
    const binaryAnswers = mediaAnswers(type)
    const description = `Answers 404 MEDIA_NOT_READY while the run is still running and has no such ${type} yet, 404 MEDIA_NOT_FOUND once it has ended. ` +
      `With ?width= a thumbnail (${type === 'image' ? 'the image scaled' : type === 'video' ? 'the first frame where ffmpeg is installed, else a neutral poster' : 'a neutral poster'}), ` +
      'made once and cached; 422 THUMBNAIL_FAILED or IMAGE_TOO_LARGE when none can be made.'

    app.get(`/api/media/${type}/:run_id`, {
      config: WITH_HEAD,
      schema: {
        tags: ['media'],
        summary: `the newest ${type} output of a run`,
        description,
        params: RunIdParams,
        querystring: MediaQuery,
        response: binaryAnswers
      }
    }, async (request, reply) => {
      const { metadata, output } = await storage.getOutput(request.params.run_id, type)
      return await send(reply, metadata.run_id, output, request.query)
    })

    app.get(`/api/media/${type}/:run_id/:index`, {
      config: WITH_HEAD,
      schema: {
        tags: ['media'],
        summary: `the index-th ${type} output of a run (0-based among its ${type} outputs)`,
        description,
        params: MediaIndexParams,
        querystring: MediaQuery,
        response: binaryAnswers
      }
    }, async (request, reply) => {
      const { metadata, output } = await storage.getOutput(request.params.run_id, type, request.params.index)
      return await send(reply, metadata.run_id, output, request.query)
    })
  }

  app.get('/api/media/info/:run_id', {
    schema: {
      tags: ['media'],
      summary: 'what a run has produced so far, and whether it is still running',
      description: '`type` and `url` name the newest output, so a frontend can choose between <img>, <audio> and <video>.',
      params: RunIdParams,
      response: { 200: MediaInfo, ...errorResponses(400, 404) }
    }
  }, async (request) => {
    const metadata = await storage.getMetadata(request.params.run_id)
    const outputs = metadata.outputs.map((o) => ({ ...o, url: mediaUrl(metadata, o, baseUrl) }))
    const newest = outputs.at(-1)
    return {
      run_id: metadata.run_id,
      schema: metadata.schema,
      execution_mode: metadata.execution_mode,
      timestamp: metadata.timestamp,
      status: metadata.status,
      type: newest?.type ?? null,
      url: newest?.url ?? null,
      outputs
    }
  })

  app.get('/api/media/run/:run_id', {
    schema: {
      tags: ['media'],
      summary: 'the complete run metadata',
      params: RunIdParams,
      response: { 200: RunMetadata, ...errorResponses(400, 404) }
    }
  }, async (request) => await storage.getMetadata(request.params.run_id))

  app.get('/api/runs/:run_id/files/:filename', {
    schema: {
      tags: ['runs'],
      summary: 'a file of the run folder, by a name its metadata lists',
      params: RunFileParams,
      querystring: DownloadQuery,
      response: RunFileAnswers
    }
  }, async (request, reply) => {
    const { run_id: runId, filename } = request.params
    const file = await storage.resolveFile(runId, filename)
    if (file.output !== null) return await reply.sendMedia(file.metadata.run_id, file.output, isTrue(request.query.download))
    const disposition = isTrue(request.query.download) ? 'attachment' : 'inline'
    return await reply
      .type(filename.endsWith('.json') ? 'application/json; charset=utf-8' : 'text/plain; charset=utf-8')
      .header('X-Content-Type-Options', 'nosniff')
      .header('Cache-Control', 'no-cache')
      .header('Content-Disposition', `${disposition}; filename="${filename}"`)
      .send(await storage.readFile(file))
  })
}

/** The stored file, or its thumbnail when a width is asked for. */
async function send (reply: FastifyReply, runId: string, output: MediaOutput, query: MediaQuery): Promise<FastifyReply> {
  const download = isTrue(query.download)
  return query.width === undefined
    ? await reply.sendMedia(runId, output, download)
    : await reply.sendThumbnail(runId, output, query.width, download)
}

function isTrue (flag: string | undefined): boolean {
  return flag === '1' || flag === 'true'
}

export default mediaRoutes
