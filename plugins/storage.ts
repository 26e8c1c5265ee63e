import fp from 'fastify-plugin'
import { join, resolve } from 'node:path'
import { listSetting } from '../config.js'
import { FetchPolicy } from '../services/http/address-policy.js'
import { MediaIngester } from '../services/storage/ingest.js'
import { RunIndex } from '../services/storage/run-index.js'
import { RunStorage, type RunChange } from '../services/storage/run-storage.js'

declare module 'fastify' {
  interface FastifyInstance {
    storage: RunStorage
    fetchPolicy: FetchPolicy
    /** the runs for listing and filtering (GET /api/runs), kept current by every storage write */
    runIndex: RunIndex
  }
}

export default fp(async function storagePlugin (app) {
  const { config } = app
  const fetchPolicy = new FetchPolicy(listSetting(config.ALLOWED_FETCH_HOSTS))
  const runsDir = resolve(config.RUNS_DIR)
  // Assigned once the index is open; the storage takes no writes before that.
  let runIndex: RunIndex | undefined
  const storage = new RunStorage({
    runsDir,
    metadataCacheEntries: config.METADATA_CACHE_ENTRIES,
    ingester: new MediaIngester({
      maxBytes: config.MAX_UPLOAD_BYTES,
      fetchTimeoutMs: config.FETCH_TIMEOUT_MS,
      maxRedirects: config.FETCH_MAX_REDIRECTS,
      fetchPolicy
    }),
    onChange: (change: RunChange) => {
      try {
        if (change.kind === 'written') runIndex?.upsert(change.metadata)
        else runIndex?.remove(change.run_id)
      } catch (err) {
        const runId = change.kind === 'written' ? change.metadata.run_id : change.run_id
        app.log.error({ err, run_id: runId }, 'the run index missed an update; the next start reads every run again')
      }
    }
  })
  const { removed } = await storage.init()
  if (removed.length > 0) app.log.warn({ removed }, 'removed leftovers of an interrupted write')

  runIndex = await RunIndex.open({ path: resolve(config.RUN_INDEX_PATH ?? join(runsDir, '.index.sqlite')), source: storage })
  const { rebuilt, fullScan, added, updated, removed: dropped, skipped } = runIndex.openReport
  if (rebuilt === 'missing') app.log.info({ runs: added }, 'run index built from the run folders')
  else if (rebuilt !== null) app.log.warn({ reason: rebuilt, runs: added }, 'run index built again from the run folders')
  else if (added + updated + dropped > 0) app.log.warn({ full_scan: fullScan, added, updated, removed: dropped }, 'run index caught up with the run folders')
  if (skipped.length > 0) app.log.warn({ count: skipped.length, first: skipped.slice(0, 20) }, 'run folders left out of the index')
  const index = runIndex
  app.addHook('onClose', async () => { index.close() })

  app.decorate('storage', storage)
  app.decorate('fetchPolicy', fetchPolicy)
  app.decorate('runIndex', index)
}, { name: 'storage', dependencies: ['config'] })
