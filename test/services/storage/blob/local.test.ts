import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { BlobExistsError } from '../../../../services/storage/blob/blob-store.js'
import { LocalBlobStore } from '../../../../services/storage/blob/local.js'
import { uuidv7 } from '../../../../services/storage/run-id.js'
import { tempRunsDir } from '../../../helper.js'

const bytes = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 7) % 256))

async function storeWithRun (t: Parameters<typeof tempRunsDir>[0]): Promise<{ blobs: LocalBlobStore, runId: string, root: string }> {
  const root = await tempRunsDir(t)
  const blobs = new LocalBlobStore(root)
  await blobs.recover()
  const runId = uuidv7()
  await blobs.createRun(runId, [['input_text.txt', 'Blume'], ['metadata.json', '{}']])
  return { blobs, runId, root }
}

// The promises every driver keeps are in blob-store.test.ts; here what only a disk has: folders, temp names, links, statfs.

t.test('a run is one folder, made without a temporary one left beside it', async (t) => {
  const { blobs, runId, root } = await storeWithRun(t)
  t.equal(blobs.description, `local:${root}`)
  t.same(await readdir(root), [runId], 'the folder, no temporary one')
  t.same((await readdir(join(root, runId))).sort(), ['input_text.txt', 'metadata.json'])
})

t.test('a staged file is put under a free name only, and stays until discarded', async (t) => {
  const { blobs, runId, root } = await storeWithRun(t)
  const path = blobs.stagingPath(runId)
  t.ok(path.startsWith(join(root, runId, '.tmp-')), 'staged in the run folder, under the half-made prefix')
  await writeFile(path, bytes)
  const staged = { path, size: bytes.length, durable: Promise.resolve() }
  await blobs.putStaged(runId, 'output_image.png', staged)
  t.equal((await stat(join(root, runId, 'output_image.png'))).ino, (await stat(path)).ino, 'linked, not copied')
  await t.rejects(blobs.putStaged(runId, 'output_image.png', staged), BlobExistsError, 'never replaces')
  await blobs.discardStaged(staged)
  t.same(await readFile(join(root, runId, 'output_image.png')), bytes)
  t.equal(await blobs.directUrl(), null, 'the bytes of a run folder come through the service')
})

t.test('deleteRun makes the run disappear; recover removes what was half-made', async (t) => {
  const { blobs, runId, root } = await storeWithRun(t)
  await mkdir(join(root, '.tmp-half'))
  await writeFile(join(root, runId, '.tmp-staged'), 'x')
  await mkdir(join(root, 'not-a-run'))
  t.same(await blobs.listRuns(), [runId], 'neither a half-made folder nor a stranger is a run')
  t.same((await blobs.recover()).removed.sort(), ['.tmp-half', `${runId}/.tmp-staged`])
  await blobs.deleteRun(runId)
  t.same(await blobs.listRuns(), [])
  t.same((await readdir(root)).sort(), ['not-a-run'])
  t.equal(await blobs.isWritable(), true)
  t.equal(await new LocalBlobStore(join(root, 'missing')).isWritable(), false)
})

t.test('space: the free and total bytes of the volume the runs are on, as df tells them', async (t) => {
  const root = await tempRunsDir(t)
  const blobs = new LocalBlobStore(root)
  const space = await blobs.space()
  const [total, available] = execFileSync('df', ['-B1', '--output=size,avail', root], { encoding: 'utf8' }).trim().split('\n')[1]!.trim().split(/\s+/).map(Number)
  t.equal(space.totalBytes, total)
  // Others write on the same disk meanwhile: within 256 MiB of what df saw.
  t.ok(Math.abs(space.availableBytes - available!) < 256 * 1024 * 1024, `${space.availableBytes} free, df says ${available}`)
  await t.rejects(new LocalBlobStore(join(root, 'missing')).space(), { code: 'ENOENT' })
})
