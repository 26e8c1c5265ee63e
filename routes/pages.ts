import type { FastifyError, FastifyPluginAsync } from 'fastify'
import compress from '@fastify/compress'
import fastifyStatic from '@fastify/static'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { errorBody } from '../services/errors.js'

/**
 * The folder of the pages. From the sources this file is routes/pages.ts and
 * the folder is ../public; compiled it is dist/routes/pages.js and the folder
 * stays where the sources keep it (npm start and the Docker image copy no
 * files into dist/).
 */
export function findPublicDir (candidates = ['../public/', '../../public/']): string {
  for (const candidate of candidates) {
    const dir = fileURLToPath(new URL(candidate, import.meta.url))
    if (existsSync(`${dir}index.html`)) return dir
  }
  throw new Error(`the workshop pages are missing: no index.html in ${candidates.join(' or ')} beside ${fileURLToPath(import.meta.url)}`)
}

const PAGES: Record<string, string> = { '/': 'index.html', '/gallery': 'gallery.html' }

// Pages name their assets without a version, so a browser asks again after a
// while (a 304 by ETag) instead of holding old code after an update for long.
const HTML_CACHE = 'no-cache'
const ASSET_CACHE = 'public, max-age=300, must-revalidate'

/**
 * The workshop page (/), the gallery (/gallery) and their assets (/assets/…,
 * from public/assets/): plain files, no build step. Compression is registered in this
 * plugin's own context, so it reaches these answers only: media, ZIPs and
 * the event stream keep their bytes, lengths and ranges.
 */
const pageRoutes: FastifyPluginAsync<{ publicDir?: string }> = async (app, options) => {
  const root = options.publicDir ?? findPublicDir()
  await app.register(compress, { global: true, threshold: 1024, encodings: ['br', 'gzip', 'deflate'] })
  await app.register(fastifyStatic, {
    root: join(root, 'assets'),
    prefix: '/assets/',
    index: false,
    list: false,
    // small text files, compressed: a range of the compressed bytes would mean nothing
    acceptRanges: false,
    dotfiles: 'deny',
    cacheControl: false,
    setHeaders: (reply, path) => {
      void reply.header('Cache-Control', path.endsWith('.html') ? HTML_CACHE : ASSET_CACHE)
      void reply.header('X-Content-Type-Options', 'nosniff')
    }
  })
  // A path that leaves the assets folder (send's 403, a malformed one's 400) is no asset: 404 in the
  // contract's shape. Anything else goes on to the app's error handler.
  app.setErrorHandler(async (err: FastifyError, request, reply) => {
    if ((err.statusCode ?? 500) >= 500) throw err
    return await reply.code(404).header('Cache-Control', 'no-store').send(errorBody(404, 'ASSET_NOT_FOUND', `no asset ${request.url.split('?')[0] ?? ''}`))
  })
  for (const [url, file] of Object.entries(PAGES)) {
    app.get(url, { schema: { hide: true } }, async (_request, reply) => await reply.sendFile(file, root))
  }
}

export default pageRoutes
