import { Type, type Static } from '@sinclair/typebox'
import { BINARY, errorResponses } from './common.js'
import { MEDIA_TYPES, MediaType } from './media.js'
import { MediaOutput, RunId, RunStatus } from './run.js'

// What the media routes take and answer. (media.ts holds MediaType, which
// run.ts needs, so these cannot live there without an import cycle.)

export const DownloadQuery = Type.Object({
  download: Type.Optional(Type.Union([Type.Literal('1'), Type.Literal('true'), Type.Literal('0'), Type.Literal('false')], {
    description: '1: Content-Disposition attachment instead of inline'
  }))
})
export type DownloadQuery = Static<typeof DownloadQuery>

/** The widths thumbnails and posters come in: few, so that each is made once and then served from the cache. */
export const THUMBNAIL_WIDTHS = [160, 320, 640, 1280] as const
export type ThumbnailWidth = typeof THUMBNAIL_WIDTHS[number]

export const MediaQuery = Type.Object({
  ...DownloadQuery.properties,
  width: Type.Optional(Type.Unsafe<ThumbnailWidth>({
    type: 'integer',
    enum: [...THUMBNAIL_WIDTHS],
    description: 'answer a thumbnail of this width instead of the file: WebP when Accept names image/webp, else JPEG (Vary: Accept). ' +
      'An image is scaled (never up: a narrower one keeps its width; of an animation the first frame), a video shows its first frame ' +
      '(where ffmpeg is installed) or a neutral poster, sound and 3D models a neutral poster. Another width: 400 INVALID_WIDTH'
  }))
})
export type MediaQuery = Static<typeof MediaQuery>

export const MediaIndexParams = Type.Object({ run_id: RunId, index: Type.Integer({ minimum: 0, maximum: 100000 }) })

export const RunFileParams = Type.Object({ run_id: RunId, filename: Type.String({ maxLength: 255 }) })

export const MediaInfo = Type.Object({
  run_id: RunId,
  schema: Type.String(),
  execution_mode: Type.String(),
  timestamp: Type.String({ format: 'date-time' }),
  status: RunStatus,
  type: Type.Union([MediaType, Type.Null()], { description: 'type of the newest output; null while there is none' }),
  url: Type.Union([Type.String(), Type.Null()], { description: 'URL of the newest output; null while there is none' }),
  outputs: Type.Array(Type.Intersect([MediaOutput, Type.Object({ url: Type.String() })]))
})
export type MediaInfo = Static<typeof MediaInfo>

// What the Content-Type of each kind of output can be (model3d: model/gltf-binary, model/gltf+json).
const MIME_RANGES: Record<MediaType, string> = { image: 'image/*', audio: 'audio/*', video: 'video/*', model3d: 'model/*' }

const mediaBytes = (types: readonly MediaType[], what: string, statusCode: 200 | 206) => ({
  description: statusCode === 200 ? `${what}, with its detected MIME type` : `the requested byte range of ${what} (Content-Range)`,
  content: Object.fromEntries(types.map((type) => [MIME_RANGES[type], BINARY]))
})

/** The answers of a route that serves stored media through reply.sendMedia. */
export const deliveryAnswers = (types: readonly MediaType[], what: string) => ({
  200: mediaBytes(types, what, 200),
  206: mediaBytes(types, what, 206),
  302: { description: 'with S3_MEDIA_REDIRECT: the bytes are at the presigned URL in Location (valid for 10 minutes; a Range is sent there again)', type: 'null' },
  304: { description: 'not modified (If-None-Match, If-Modified-Since)', type: 'null' },
  ...errorResponses(400, 404, 416)
})

/** The answers of GET /api/media/<type>/…: the stored file, or with ?width= its thumbnail (422 when none can be made). */
export const mediaAnswers = (type: MediaType) => {
  const answers = deliveryAnswers([type], `the ${type}`)
  return {
    ...answers,
    200: {
      description: `the ${type}, with its detected MIME type; with ?width= a thumbnail (image/webp or image/jpeg, Vary: Accept)`,
      content: { ...answers[200].content, 'image/webp': BINARY, 'image/jpeg': BINARY }
    },
    ...errorResponses(422)
  }
}

/** The answers of GET /api/runs/:run_id/files/:filename: a media output (as the media routes), metadata.json or a text file. */
export const RunFileAnswers = {
  ...deliveryAnswers(MEDIA_TYPES, 'the file'),
  200: {
    description: 'the file: metadata.json, a text file, or a media output (with the headers of the media routes)',
    content: { 'application/json': BINARY, 'text/plain': BINARY, ...mediaBytes(MEDIA_TYPES, '', 200).content }
  }
}
