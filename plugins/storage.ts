import fp from 'fastify-plugin'
import type { FetchPolicy } from '../services/http/address-policy.js'
import type { RunIndex } from '../services/storage/index/run-index.js'
import type { RunStorage } from '../services/storage/run-storage.js'
import type { RunTrash } from '../services/storage/run-trash.js'
import type { RunArchive } from '../services/storage/archive/run-archive.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** the run records: metadata, status rules, media in and out (the bytes through the blob store) */
    storage: RunStorage
    /** deleted runs: DELETE moves them here, restorable until the trash is emptied */
    trash: RunTrash
    /** old runs in monthly archives: archived, restored, pruned */
    archives: RunArchive
    /** the runs for listing and filtering (GET /api/runs), kept current by the storage's change events */
    runIndex: RunIndex
    fetchPolicy: FetchPolicy
  }
}

export default fp(async function storagePlugin (app) {
  const { storage, trash, archives, index, fetchPolicy } = app.runstore
  app.decorate('storage', storage)
  app.decorate('trash', trash)
  app.decorate('archives', archives)
  app.decorate('runIndex', index)
  app.decorate('fetchPolicy', fetchPolicy)
}, { name: 'storage', dependencies: ['runstore'] })
