import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { BlobExistsError, BlobNotFoundError, type BlobStore } from '../../../../services/storage/blob/blob-store.js'
import { uuidv7 } from '../../../../services/storage/run-id.js'
import { blobStoreOf, eachDriver, type StorageDriver } from '../../../storage-drivers.js'

// The promises of BlobStore, kept by every driver: the same assertions on local disk and on S3.

const bytes = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 7) % 256))
const metadata = (runId: string): string => JSON.stringify({ run_id: runId, outputs: [{ filename: 'output_image.png' }] })

async function storeWithRun (t: Parameters<typeof blobStoreOf>[0], driver: StorageDriver): Promise<{ blobs: BlobStore, runId: string }> {
  const { blobs } = await blobStoreOf(t, driver)
  await blobs.recover()
  const runId = uuidv7()
  await blobs.createRun(runId, [['input_text.txt', 'Blume'], ['output_image.png', Buffer.from([1, 2, 3])], ['metadata.json', metadata(runId)]])
  return { blobs, runId }
}

eachDriver(t, 'a run is created whole, listed, read, streamed in ranges and stat-ed', async (t, driver) => {
  const { blobs, runId } = await storeWithRun(t, driver)
  t.match(blobs.description, driver === 'local' ? /^local:\// : /^s3:\/\/runstore-/)
  t.same(await blobs.listRuns(), [runId])
  await blobs.writeFiles(runId, [['data.bin', bytes], ['metadata.json', metadata(runId)]])
  t.same(await blobs.list(runId), ['data.bin', 'input_text.txt', 'metadata.json', 'output_image.png'])
  t.same(await blobs.read(runId, 'data.bin'), bytes)
  t.same(Buffer.concat(await (await blobs.open(runId, 'data.bin')).toArray()), bytes)
  t.same(Buffer.concat(await (await blobs.open(runId, 'data.bin', { start: 10, end: 19 })).toArray()), bytes.subarray(10, 20), 'inclusive range')
  t.same(Buffer.concat(await (await blobs.open(runId, 'data.bin', { start: 290, end: 299 })).toArray()), bytes.subarray(290), 'the last bytes')
  t.match(await blobs.stat(runId, 'data.bin'), { size: 300, modified: Date })
  t.equal(await blobs.stat(runId, 'nothing.bin'), null)
  t.equal(await blobs.stat(uuidv7(), 'data.bin'), null, 'an unknown run has no files')
  t.same(await blobs.list(uuidv7()), [])
  await t.rejects(blobs.createRun(runId, [['metadata.json', '{}']]), BlobExistsError, 'an existing run is never made again')
  t.same(await blobs.read(runId, 'metadata.json'), Buffer.from(metadata(runId)))
  t.equal(await blobs.isWritable(), true)
})

eachDriver(t, 'missing files are BlobNotFoundError, for read and for open before any byte', async (t, driver) => {
  const { blobs, runId } = await storeWithRun(t, driver)
  await t.rejects(blobs.read(runId, 'gone.png'), BlobNotFoundError)
  await t.rejects(blobs.open(runId, 'gone.png'), { code: 'BLOB_NOT_FOUND' })
  await t.rejects(blobs.read(uuidv7(), 'metadata.json'), BlobNotFoundError)
})

eachDriver(t, 'names and run ids that would leave the run are refused before anything is asked of the store', async (t, driver) => {
  const { blobs, runId } = await storeWithRun(t, driver)
  for (const name of ['../metadata.json', 'a/b', 'a\\b', '..', '.', '']) {
    await t.rejects(blobs.read(runId, name), TypeError, JSON.stringify(name))
  }
  await t.rejects(blobs.read('../etc', 'passwd'), TypeError)
  await t.rejects(blobs.open(runId, '../x'), TypeError)
  t.throws(() => blobs.stagingPath('not-a-run'), TypeError)
})

eachDriver(t, 'a staged file is put under a free name only, and stays until discarded', async (t, driver) => {
  const { blobs, runId } = await storeWithRun(t, driver)
  const path = blobs.stagingPath(runId)
  await writeFile(path, bytes)
  const staged = { path, size: bytes.length, durable: Promise.resolve() }
  await blobs.putStaged(runId, 'output_image_2.png', staged)
  await t.rejects(blobs.putStaged(runId, 'output_image_2.png', staged), BlobExistsError, 'never replaces')
  await t.rejects(blobs.putStaged(runId, 'output_image.png', staged), BlobExistsError)
  t.same(await blobs.read(runId, 'output_image.png'), Buffer.from([1, 2, 3]), 'the file that was there is unchanged')
  t.same(await blobs.list(runId), ['input_text.txt', 'metadata.json', 'output_image.png', 'output_image_2.png'], 'the staged name is not listed')
  await blobs.discardStaged(staged)
  await blobs.discardStaged(staged)
  t.same(await blobs.read(runId, 'output_image_2.png'), bytes)
  await blobs.delete(runId, 'output_image_2.png')
  await blobs.delete(runId, 'output_image_2.png')
  t.same(await blobs.list(runId), ['input_text.txt', 'metadata.json', 'output_image.png'])
})

eachDriver(t, 'deleteRun makes the run disappear', async (t, driver) => {
  const { blobs, runId } = await storeWithRun(t, driver)
  await blobs.deleteRun(runId)
  t.same(await blobs.listRuns(), [])
  t.same(await blobs.list(runId), [])
  await t.rejects(blobs.read(runId, 'metadata.json'), BlobNotFoundError)
})

eachDriver(t, 'a trashed run leaves the runs at once, keeps its files and its time, and comes back as it was', async (t, driver) => {
  const { blobs, runId } = await storeWithRun(t, driver)
  const deletedAt = new Date('2026-12-03T10:15:00.123Z')
  t.same(await blobs.trashRun(runId, deletedAt), { runId, deletedAt })
  t.same(await blobs.listRuns(), [], 'no longer a run')
  t.same(await blobs.list(runId), [])
  t.same(await blobs.listTrash(), [{ runId, deletedAt }])
  t.same(await blobs.readTrashed({ runId, deletedAt }, 'metadata.json'), Buffer.from(metadata(runId)))
  await t.rejects(blobs.readTrashed({ runId, deletedAt }, 'nothing.txt'), BlobNotFoundError)
  await t.rejects(blobs.readTrashed({ runId, deletedAt }, '../x'), TypeError, 'a name never leaves the entry')
  t.same((await blobs.recover()).removed, [], 'the crash sweep leaves the trash alone')
  t.same(await blobs.listTrash(), [{ runId, deletedAt }])

  await blobs.restoreTrashed({ runId, deletedAt })
  t.same(await blobs.listRuns(), [runId])
  t.same(await blobs.listTrash(), [])
  t.same(await blobs.list(runId), ['input_text.txt', 'metadata.json', 'output_image.png'])
  t.same(await blobs.read(runId, 'output_image.png'), Buffer.from([1, 2, 3]))
  await t.rejects(blobs.restoreTrashed({ runId, deletedAt }), BlobExistsError, 'the run is back: nothing is put over it')
  t.equal(await blobs.removeTrashed({ runId, deletedAt }), false, 'nor is the entry there to remove')
})

eachDriver(t, 'trashing a run that is not there fails and makes nothing', async (t, driver) => {
  const { blobs } = await blobStoreOf(t, driver)
  t.same(await blobs.listTrash(), [], 'an empty trash')
  await t.rejects(blobs.trashRun(uuidv7(), new Date()), BlobNotFoundError)
  await t.rejects(blobs.restoreTrashed({ runId: uuidv7(), deletedAt: new Date() }), BlobNotFoundError)
  await t.rejects(blobs.trashRun('../etc', new Date()), TypeError)
  await t.rejects(blobs.restoreTrashed({ runId: '../etc', deletedAt: new Date() }), TypeError)
  t.same(await blobs.listTrash(), [])
})

eachDriver(t, 'the trash lists the most recently trashed first', async (t, driver) => {
  const { blobs, runId } = await storeWithRun(t, driver)
  const other = uuidv7()
  await blobs.createRun(other, [['metadata.json', metadata(other)]])
  const third = uuidv7()
  await blobs.createRun(third, [['metadata.json', metadata(third)]])
  await blobs.trashRun(runId, new Date('2026-01-01T00:00:00.000Z'))
  await blobs.trashRun(other, new Date('2026-03-01T00:00:00.000Z'))
  await blobs.trashRun(third, new Date('2026-01-01T00:00:00.000Z'))
  t.same((await blobs.listTrash()).map((e) => e.runId), [other, third, runId], 'by time, then newest id')
})

eachDriver(t, 'a trashed run is removed for good once', async (t, driver) => {
  const { blobs, runId } = await storeWithRun(t, driver)
  const entry = await blobs.trashRun(runId, new Date())
  t.equal(await blobs.removeTrashed(entry), true)
  t.same(await blobs.listTrash(), [])
  t.equal(await blobs.removeTrashed(entry), false)
  await t.rejects(blobs.restoreTrashed(entry), BlobNotFoundError)
})
