import t from 'tap'
import { link, mkdir, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { BlobExistsError, BlobNotFoundError } from '../../../../services/storage/blob/blob-store.js'
import { LocalBlobStore } from '../../../../services/storage/blob/local.js'
import { uuidv7 } from '../../../../services/storage/run-id.js'
import { tempRunsDir } from '../../../helper.js'

const metadata = (runId: string): string => JSON.stringify({ run_id: runId, outputs: [{ filename: 'output_image.png' }] })

async function storeWithRun (t: Parameters<typeof tempRunsDir>[0]): Promise<{ blobs: LocalBlobStore, runId: string, root: string }> {
  const root = await tempRunsDir(t)
  const blobs = new LocalBlobStore(root)
  await blobs.recover()
  const runId = uuidv7()
  await blobs.createRun(runId, [['input_text.txt', 'Blume'], ['output_image.png', Buffer.from([1, 2, 3])], ['metadata.json', metadata(runId)]])
  return { blobs, runId, root }
}

// What every driver's trash does is in blob-store.test.ts; here how it looks on disk.

t.test('a trashed run is one rename into RUNS_DIR/.trash, its time in the entry\'s name, its folder as it was', async (t) => {
  const { blobs, runId, root } = await storeWithRun(t)
  const deletedAt = new Date('2026-12-03T10:15:00.123Z')
  await blobs.trashRun(runId, deletedAt)
  t.same(await readdir(root), ['.trash'])
  t.same(await readdir(join(root, '.trash')), [`${runId}@20261203T101500123Z`], 'the time is in the entry\'s name')
  t.same((await readdir(join(root, '.trash', `${runId}@20261203T101500123Z`))).sort(), ['input_text.txt', 'metadata.json', 'output_image.png'], 'nothing added to the folder')
  await blobs.restoreTrashed({ runId, deletedAt })
  t.same((await readdir(join(root, runId))).sort(), ['input_text.txt', 'metadata.json', 'output_image.png'])
  t.same(await readdir(join(root, '.trash')), [])
})

t.test('trashing a run that is not there makes nothing but the trash folder', async (t) => {
  const root = await tempRunsDir(t)
  const blobs = new LocalBlobStore(root)
  await t.rejects(blobs.trashRun(uuidv7(), new Date()), BlobNotFoundError)
  t.same(await readdir(join(root, '.trash')), [])
})

// The order of the trash is checked on every driver (blob-store.test.ts); here, what else a folder may hold.
t.test('the trash ignores what it did not make', async (t) => {
  const { blobs, runId, root } = await storeWithRun(t)
  await blobs.trashRun(runId, new Date('2026-01-01T00:00:00.000Z'))
  await mkdir(join(root, '.trash', 'not-a-run'))
  await mkdir(join(root, '.trash', `${runId}@20261301T000000000Z`))
  await writeFile(join(root, '.trash', `${runId}@20260101T000000000`), '')
  t.same((await blobs.listTrash()).map((e) => e.runId), [runId], 'only the entry it made')
})

t.test('restoring never replaces a run of that id, not even an empty folder', async (t) => {
  const { blobs, runId, root } = await storeWithRun(t)
  const entry = await blobs.trashRun(runId, new Date())
  await mkdir(join(root, runId))
  await t.rejects(blobs.restoreTrashed(entry), BlobExistsError)
  t.same(await readdir(join(root, runId)), [])
  t.same(await blobs.listTrash(), [entry], 'still in the trash')
})

t.test('restoring leaves out what a write cut off by the trashing left half-made', async (t) => {
  const { blobs, runId, root } = await storeWithRun(t)
  const entry = await blobs.trashRun(runId, new Date())
  const trashed = (await readdir(join(root, '.trash')))[0]!
  // an upload that was streaming into the run, and an output linked to its temp file but never listed
  await writeFile(join(root, '.trash', trashed, '.tmp-0123456789abcdef'), 'half an upload')
  await link(join(root, '.trash', trashed, '.tmp-0123456789abcdef'), join(root, '.trash', trashed, 'output_image_2.png'))
  await blobs.restoreTrashed(entry)
  t.same((await readdir(join(root, runId))).sort(), ['input_text.txt', 'metadata.json', 'output_image.png'])
})

t.test('removing a trashed run goes by a temp name: a crash in between leaves only what the sweep removes', async (t) => {
  const { blobs, runId, root } = await storeWithRun(t)
  const entry = await blobs.trashRun(runId, new Date())
  t.equal(await blobs.removeTrashed(entry), true)
  t.same(await readdir(root), ['.trash'])
  t.same(await readdir(join(root, '.trash')), [])
  t.same(await blobs.listTrash(), [])
})
