import fp from 'fastify-plugin'
import { resolve } from 'node:path'
import { listSetting } from '../config.js'
import { FetchPolicy } from '../services/http/address-policy.js'
import { MediaIngester } from '../services/storage/ingest.js'
import { RunStorage } from '../services/storage/run-storage.js'

declare module 'fastify' {
  interface FastifyInstance {
    storage: RunStorage
    fetchPolicy: FetchPolicy
  }
}

export default fp(async function storagePlugin (app) {
  const { config } = app
  const fetchPolicy = new FetchPolicy(listSetting(config.ALLOWED_FETCH_HOSTS))
  const storage = new RunStorage({
    runsDir: resolve(config.RUNS_DIR),
    metadataCacheEntries: config.METADATA_CACHE_ENTRIES,
    ingester: new MediaIngester({
      maxBytes: config.MAX_UPLOAD_BYTES,
      fetchTimeoutMs: config.FETCH_TIMEOUT_MS,
      maxRedirects: config.FETCH_MAX_REDIRECTS,
      fetchPolicy
    })
  })
  const { removed } = await storage.init()
  if (removed.length > 0) app.log.warn({ removed }, 'removed leftovers of an interrupted write')
  app.decorate('storage', storage)
  app.decorate('fetchPolicy', fetchPolicy)
}, { name: 'storage', dependencies: ['config'] })
