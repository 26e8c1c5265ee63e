import t from 'tap'
import { mkdir, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { FetchPolicy } from '../../../services/http/address-policy.js'
import { UnsyncedWriteError, type TrashedRun } from '../../../services/storage/blob/blob-store.js'
import { LocalBlobStore } from '../../../services/storage/blob/local.js'
import { MediaIngester } from '../../../services/storage/ingest.js'
import type { RunEvent } from '../../../services/storage/run-events.js'
import { RunStorage } from '../../../services/storage/run-storage.js'
import { RunTrash } from '../../../services/storage/run-trash.js'
import { tempRunsDir } from '../../helper.js'

const ingester = (): MediaIngester => new MediaIngester({ maxBytes: 1024, fetchTimeoutMs: 1000, maxRedirects: 0, fetchPolicy: new FetchPolicy() })

async function trashOver (t: Parameters<typeof tempRunsDir>[0], blobs: LocalBlobStore): Promise<{ storage: RunStorage, trash: RunTrash, heard: string[] }> {
  const storage = new RunStorage({ blobs, ingester: ingester() })
  await storage.init()
  const heard: string[] = []
  storage.events.subscribe('test', (event: RunEvent) => { heard.push(event.type === 'run.restored' ? `${event.type} ${event.metadata.input_text}` : event.type) })
  return { storage, trash: new RunTrash(storage, { trashDays: 30 }), heard }
}

const newRun = async (storage: RunStorage) => await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'Eine Blume' })

t.test('a delete into the trash is heard as run.deleted, a restore as run.restored with the metadata', async (t) => {
  const root = await tempRunsDir(t)
  const { storage, trash, heard } = await trashOver(t, new LocalBlobStore(root))
  const run = await newRun(storage)
  await trash.deleteRun(run.run_id.toUpperCase())
  await t.rejects(storage.getMetadata(run.run_id), { code: 'RUN_NOT_FOUND' }, 'not served from the metadata cache')
  await t.rejects(trash.deleteRun(run.run_id), { code: 'RUN_NOT_FOUND' }, 'a run is deleted once')
  t.same(await trash.restore(run.run_id), run)
  t.same(await storage.getMetadata(run.run_id), run)
  t.same(heard, ['run.created', 'run.deleted', 'run.restored Eine Blume'])
  await t.rejects(storage.restoreRun(run.run_id, async () => { t.fail('never brought over a live run') }), { code: 'RUN_EXISTS', statusCode: 409 })
  await t.rejects(trash.restore('nope'), { code: 'INVALID_RUN_ID' })
})

t.test('a move whose sync fails is told all the same: the run has moved', async (t) => {
  const durable = await import('../../../services/storage/blob/durable-fs.js')
  let failSync = false
  const { LocalBlobStore: FailingSync } = await t.mockImport<typeof import('../../../services/storage/blob/local.js')>('../../../services/storage/blob/local.js', {
    '../../../services/storage/blob/durable-fs.js': {
      ...durable,
      fsyncPath: async (path: string) => {
        if (failSync) throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' })
        await durable.fsyncPath(path)
      }
    }
  })
  const blobs = new FailingSync(await tempRunsDir(t))
  const { storage, trash, heard } = await trashOver(t, blobs)
  const run = await newRun(storage)
  failSync = true
  await t.rejects(trash.deleteRun(run.run_id), UnsyncedWriteError)
  t.same(await blobs.listRuns(), [], 'moved')
  await t.rejects(storage.getMetadata(run.run_id), { code: 'RUN_NOT_FOUND' })
  await t.rejects(trash.restore(run.run_id), UnsyncedWriteError)
  t.same(await blobs.listRuns(), [run.run_id], 'back')
  t.same(await storage.getMetadata(run.run_id), run)
  t.same(heard, ['run.created', 'run.deleted', 'run.restored Eine Blume'])
})

t.test('a restore that loses a race is refused with the reason, and changes nothing', async (t) => {
  const root = await tempRunsDir(t)
  let race: (() => Promise<void>) | undefined
  // What another process (the maintenance CLI emptying the trash, a person copying a folder) does
  // between the trash's listing and the move back.
  class Raced extends LocalBlobStore {
    override async listTrash (): Promise<TrashedRun[]> {
      const entries = await super.listTrash()
      const racing = race
      race = undefined
      await racing?.()
      return entries
    }
  }
  const { storage, trash, heard } = await trashOver(t, new Raced(root))
  const emptied = await newRun(storage)
  const copied = await newRun(storage)
  await trash.deleteRun(emptied.run_id)
  await trash.deleteRun(copied.run_id)

  race = async () => { await mkdir(join(root, copied.run_id)) }
  await t.rejects(trash.restore(copied.run_id), { code: 'RUN_EXISTS', statusCode: 409 }, 'a folder of that id appeared meanwhile')
  t.same(await readdir(join(root, copied.run_id)), [], 'and it is not replaced')

  race = async () => { await trash.emptyTrash({ olderThanDays: 0 }).then(() => {}) }
  await t.rejects(trash.restore(emptied.run_id), { code: 'TRASHED_RUN_NOT_FOUND', statusCode: 404 }, 'emptied meanwhile')
  t.same(await storage.blobs.listTrash(), [])
  t.same(heard.filter((e) => e.startsWith('run.restored')), [])
})

t.test('emptying the trash reports the oldest first; its default age is TRASH_DAYS', async (t) => {
  const root = await tempRunsDir(t)
  const blobs = new LocalBlobStore(root)
  const { storage } = await trashOver(t, blobs)
  const trash = new RunTrash(storage, { trashDays: 7 })
  const ids: string[] = []
  for (const daysAgo of [3, 10, 20]) {
    const run = await newRun(storage)
    ids.push(run.run_id)
    await storage.deleteRun(run.run_id, async (id) => await blobs.trashRun(id, new Date(Date.parse('2026-12-31T00:00:00Z') - daysAgo * 86400000)))
  }
  const now = new Date('2026-12-31T00:00:00Z')
  t.same(await trash.emptyTrash({ now, dryRun: true }), {
    dry_run: true,
    older_than_days: 7,
    removed: [{ run_id: ids[2], deleted_at: '2026-12-11T00:00:00.000Z' }, { run_id: ids[1], deleted_at: '2026-12-21T00:00:00.000Z' }],
    kept: 1
  })
  t.same((await trash.emptyTrash({ now, olderThanDays: 3 })).removed.map((r) => r.run_id), [ids[2], ids[1], ids[0]], 'exactly 3 days ago counts')
  t.same(await blobs.listTrash(), [])
})
