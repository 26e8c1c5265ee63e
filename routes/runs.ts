import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { MultipartFile } from '@fastify/multipart'
import { errorCodes } from 'fastify'
import type { Static } from '@sinclair/typebox'
import { errorResponses, isName, RunIdParams, STORAGE_FAILURES } from '../schemas/common.js'
import { isMediaType } from '../schemas/media.js'
import { MediaOutput, RunMetadata, RunStatus } from '../schemas/run.js'
import { AddMediaJson, AddMediaMultipart, CreateRunBody, DeletedResponse, ListRunsQuery, PatchRunBody, RunList, RunSummary, RunZipResponse } from '../schemas/runs-api.js'
import { InvalidSourceError, isCodedError, RunArchivedError, RunNotFoundError, UnsupportedMediaError } from '../services/errors.js'
import { addMediaFromPrompt } from '../services/generation/prompt-intake.js'
import type { RunIndexEntry } from '../services/storage/index/run-index.js'
import { outputUrl } from '../services/media/media-url.js'
import { exportRunZip } from '../services/storage/run-export.js'
import type { MediaInput } from '../services/storage/ingest.js'
import type { StagedMedia } from '../services/storage/run-storage.js'
import multipartPlugin from '../plugins/multipart.js'

const runRoutes: FastifyPluginAsyncTypebox = async (app) => {
  // Only these routes take uploads: @fastify/multipart's hooks run on every
  // request of the context it is registered in, and must stay off the media hot path.
  await app.register(multipartPlugin)
  const { storage } = app
  // base64 is 4/3 of the bytes; the storage enforces the real limit on the decoded media.
  const jsonBodyLimit = Math.ceil(app.config.MAX_UPLOAD_BYTES * 4 / 3) + 64 * 1024
  const baseUrl = (app.config.PUBLIC_BASE_URL ?? '').replace(/\/+$/, '')

  const summary = (entry: RunIndexEntry): Static<typeof RunSummary> => {
    const { status, ...fields } = entry
    return {
      ...fields,
      status: status as Static<typeof RunStatus>,
      // The first output of a type is that type's index 0.
      thumbnail_url: entry.media_types.includes('image') ? outputUrl(entry.run_id, 'image', 0, baseUrl) : null,
      url: `/api/runs/${entry.run_id}`
    }
  }

  app.get('/api/runs', {
    schema: {
      tags: ['runs'],
      summary: 'list runs, newest first (or oldest first), filtered and paged',
      description: 'Every filter given must hold. from is inclusive, to exclusive, both on the run\'s creation time. q finds a substring of the input or the transformed text, ignoring case; any text is taken literally (quotes, operators, NUL). A page holds up to limit runs; next_cursor, passed as cursor with the same filters and order, gives the next one (runs created meanwhile do not shift pages). A cursor this service did not give out for that order is refused with 400 INVALID_CURSOR. total counts the matches up to 500 (total_exact false beyond; without filters, or with status alone, it is always exact). index says whether the index is complete: while it is being built (after its file was lost), a listing lacks the runs not reached yet.',
      querystring: ListRunsQuery,
      response: { 200: RunList, ...errorResponses(400) }
    }
  }, async (request) => {
    const { limit, cursor, order, ...filters } = request.query
    const page = await app.runIndex.list(filters, { limit, cursor, order })
    return { runs: page.runs.map(summary), next_cursor: page.next_cursor, total: page.total, total_exact: page.total_exact, index: app.runIndex.progress() }
  })

  app.post('/api/runs', {
    schema: {
      tags: ['runs'],
      summary: 'create a run folder with metadata.json and input_text.txt',
      body: CreateRunBody,
      response: { 201: RunMetadata, ...errorResponses(400, ...STORAGE_FAILURES) }
    }
  }, async (request, reply) => {
    return await reply.code(201).send(await storage.createRun(request.body))
  })

  app.get('/api/runs/:run_id', {
    schema: {
      tags: ['runs'],
      summary: 'the run\'s metadata (the same document as its metadata.json)',
      params: RunIdParams,
      description: 'An archived run answers 404 RUN_ARCHIVED, naming its archive: POST /api/archives/restore brings it back.',
      response: { 200: RunMetadata, ...errorResponses(400, 404) }
    }
  }, async (request) => await storage.getMetadata(request.params.run_id).catch(async (err: unknown) => {
    const archive = err instanceof RunNotFoundError ? await app.runIndex.archiveOf(request.params.run_id) : null
    throw archive === null ? err : new RunArchivedError(request.params.run_id, archive)
  }))

  app.get('/api/runs/:run_id/export.zip', {
    schema: {
      tags: ['runs'],
      summary: 'the run folder as a ZIP (streamed): metadata.json, the texts and every media file',
      params: RunIdParams,
      response: {
        200: RunZipResponse,
        ...errorResponses(400, 404)
      }
    }
  }, async (request, reply) => {
    const { runId, stream } = await exportRunZip(storage, request.params.run_id)
    return await reply
      .type('application/zip')
      .header('Content-Disposition', `attachment; filename="${runId}.zip"`)
      .header('Cache-Control', 'no-cache')
      .send(stream)
  })

  app.delete('/api/runs/:run_id', {
    preHandler: async (request) => { await app.requireAdmin(request) },
    schema: {
      tags: ['runs'],
      summary: 'delete a run: into the trash, restorable until the trash is emptied (admin: Authorization: Bearer <ADMIN_TOKEN>)',
      description: 'The run disappears at once from GET /api/runs and every read; its folder moves to the trash unchanged (GET /api/trash, POST /api/trash/:run_id/restore) and is removed for good TRASH_DAYS after. With TRASH_DAYS=0 it is removed at once.',
      params: RunIdParams,
      security: [{ adminToken: [] }],
      response: { 204: DeletedResponse, ...errorResponses(400, 401, 403, 404, ...STORAGE_FAILURES) }
    }
  }, async (request, reply) => {
    await app.trash.deleteRun(request.params.run_id)
    return await reply.code(204).send()
  })

  app.patch('/api/runs/:run_id', {
    schema: {
      tags: ['runs'],
      summary: 'set the transformed text (written to transformed_text.txt) or move the status on',
      description: 'status moves created → running → completed | failed | blocked; a finished run cannot change status (409)',
      params: RunIdParams,
      body: PatchRunBody,
      response: { 200: RunMetadata, ...errorResponses(400, 404, 409, ...STORAGE_FAILURES) }
    }
  }, async (request) => {
    const { run_id: runId } = request.params
    const { transformed_text: text, status } = request.body
    // One write: a refused status leaves the text unchanged too.
    return await storage.update(runId, {
      ...(text !== undefined ? { transformed_text: text } : {}),
      ...(status !== undefined ? { status } : {})
    })
  })

  app.post('/api/runs/:run_id/media', {
    bodyLimit: jsonBodyLimit,
    schema: {
      tags: ['runs'],
      summary: 'store a media file in the run',
      description: 'JSON with `source: "url"` (downloaded at once), `source: "data"` (data URI or bare base64) or `source: "comfyui"` (every file of a prompt submitted to COMFYUI_URL is stored; the answer is the first, the others are in the run\'s metadata), or multipart/form-data with one `file` and the fields `config`, `media_type?`. The type and format come from the bytes; a `media_type` that contradicts them is refused (415). A file that is cut off or broken is refused with 422 `MEDIA_CORRUPT`, an image with more than MAX_IMAGE_PIXELS pixels with 422 `IMAGE_TOO_LARGE`. Nothing is stored when the request fails, except with `source: "comfyui"`, where files stored before a later one failed stay and the failure is recorded in the run\'s errors. 503 when ComfyUI is not configured. Like every write: 507 INSUFFICIENT_STORAGE when the disk is full, 503 STORAGE_UNAVAILABLE when it takes no writes (read-only or failing), and nothing is stored.',
      params: RunIdParams,
      body: { content: { 'application/json': { schema: AddMediaJson }, 'multipart/form-data': { schema: AddMediaMultipart } } },
      response: { 201: MediaOutput, ...errorResponses(400, 404, 413, 415, 422, 502, 504, ...STORAGE_FAILURES) }
    }
  }, async (request, reply) => {
    const { run_id: runId } = request.params
    await storage.getMetadata(runId)
    if (request.isMultipart()) {
      return await reply.code(201).send(await addUploadedMedia(runId, request.parts()))
    }
    // The body schema covers JSON and forms only: a body another parser read (text/plain) arrives unchecked.
    if (typeof request.body !== 'object') throw new errorCodes.FST_ERR_CTP_INVALID_MEDIA_TYPE()
    const body = request.body as Static<typeof AddMediaJson>
    const { config, media_type: mediaType, backend } = body
    if (body.source === 'comfyui') {
      // every file of the prompt is stored; the answer is the first, the rest are in the run's metadata
      const outputs = await addMediaFromPrompt(storage, app.backends, body.source, runId, body.prompt_id, config, mediaType)
      return await reply.code(201).send(outputs[0]!)
    }
    const input: MediaInput = body.source === 'url' ? { kind: 'url', url: body.url } : { kind: 'data', data: body.data }
    const output = await storage.addMedia(runId, input, {
      config,
      backend: backend ?? body.source,
      ...(mediaType !== undefined ? { media_type: mediaType } : {})
    })
    return await reply.code(201).send(output)
  })

  /**
   * Fields may come before or after the file in a form, so the file is staged
   * (streamed into the run folder under a temporary name) as soon as it
   * arrives and listed only once all fields are known and valid.
   */
  async function addUploadedMedia (runId: string, parts: AsyncIterableIterator<MultipartFile | { type: 'field', fieldname: string, value: unknown }>): Promise<MediaOutput> {
    const fields: Record<string, string> = {}
    let staged: StagedMedia | undefined
    let originalFilename: string | undefined
    try {
      for await (const part of readableParts(parts)) {
        if (part.type === 'file') {
          const file = part as MultipartFile
          if (file.fieldname !== 'file' || staged !== undefined) {
            file.file.resume()
            throw new InvalidSourceError('send exactly one file, in the field "file"')
          }
          staged = await storage.stageMedia(runId, file.file)
          originalFilename = file.filename ? file.filename.slice(0, 255) : undefined
        } else {
          fields[part.fieldname] = String(part.value)
        }
      }
      if (staged === undefined) throw new InvalidSourceError('the form has no field "file"')
      const { config, media_type: mediaType, backend } = fields
      if (config === undefined || !isName(config)) throw new InvalidSourceError('the form needs a field "config" (letters, digits, _ . -)')
      if (mediaType !== undefined && !isMediaType(mediaType)) throw new UnsupportedMediaError(`media_type ${mediaType.slice(0, 40)}`)
      if (backend !== undefined && !isName(backend)) throw new InvalidSourceError('field "backend" must be letters, digits, _ . -')
      const committing = staged
      staged = undefined
      return await storage.commitMedia(committing, {
        config,
        backend: backend ?? 'upload',
        ...(mediaType !== undefined ? { media_type: mediaType } : {}),
        source: { kind: 'upload', ...(originalFilename !== undefined ? { original_filename: originalFilename } : {}) }
      })
    } finally {
      if (staged !== undefined) await storage.discardStaged(staged)
    }
  }
}

/** The form's parts; a body that is not valid multipart is the client's error (400), not ours. */
async function * readableParts<T> (parts: AsyncIterableIterator<T>): AsyncGenerator<T> {
  for (;;) {
    let next: IteratorResult<T>
    try {
      next = await parts.next()
    } catch (err) {
      if (isCodedError(err)) throw err
      throw new InvalidSourceError(`the multipart body cannot be read: ${err instanceof Error ? err.message : String(err)}`)
    }
    if (next.done === true) return
    yield next.value
  }
}

export default runRoutes
