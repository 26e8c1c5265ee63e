import t from 'tap'
import { createHash } from 'node:crypto'
import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import imageSize from 'image-size'
import { createRunstore, PIPELINE_STAGES } from '../runstore.js'
import { fixtures } from './fixtures/media.js'
import { tempRunsDir, testConfig } from './helper.js'

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex')

t.test('the composition root builds every service without Fastify: a pipeline run, its image read back through the blob store', async (t) => {
  const runsDir = await tempRunsDir(t)
  const runstore = await createRunstore(testConfig(runsDir))
  t.teardown(async () => { await runstore.close() })
  t.same(runstore.pipeline.stages.map((s) => s.name), PIPELINE_STAGES.map((make) => make().name), 'the stages in the one order written down')
  t.same(runstore.events.subscribers.sort(), ['media-cache', 'metrics', 'run index', 'thumbnails'])

  const outcome = await runstore.pipeline.run({ schema: 'dada', input_text: 'Eine Blume auf der Wiese' })
  if (outcome.status !== 'completed') throw new Error(`the run did not complete: ${JSON.stringify(outcome)}`)
  const runId = outcome.run_id
  const metadata = await runstore.storage.getMetadata(runId)
  t.equal(metadata.status, 'completed')
  const image = metadata.outputs[0]!
  t.match(image, { type: 'image', format: 'png', backend: 'builtin' })

  const bytes = await runstore.blobs.read(runId, image.filename)
  t.equal(bytes.length, image.file_size_bytes)
  t.equal(sha256(bytes), image.sha256, 'the bytes the metadata promises')
  t.match(imageSize(bytes), { width: image.width, height: image.height, type: 'png' })
  t.same(bytes, await readFile(join(runsDir, runId, image.filename)), 'in the run folder of the local driver')
  t.same(Buffer.concat(await (await runstore.blobs.open(runId, image.filename, { start: 0, end: 7 })).toArray()), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), 'a byte range: the PNG signature')
  t.same((await runstore.blobs.list(runId)).sort(), ['input_text.txt', 'metadata.json', image.filename, 'transformed_text.txt'].sort())

  const listed = await runstore.index.list({ schema: 'dada' })
  t.same(listed.runs.map((r) => r.run_id), [runId], 'the index heard of it through the change events')
  t.match(listed.runs[0], { status: 'completed', media_types: ['image'], backends: ['builtin'] })
})

t.test('deleting a run through the service evicts its cached media and its index entry', async (t) => {
  const runsDir = await tempRunsDir(t)
  const runstore = await createRunstore(testConfig(runsDir))
  t.teardown(async () => { await runstore.close() })
  const { storage, mediaDelivery, index } = runstore
  const run = await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'Blume' })
  const png = await readFile(fixtures.png.file)
  const output = await storage.addMedia(run.run_id, png, { config: 'upload', backend: 'upload' })

  const served = await mediaDelivery.deliver(run.run_id, output, {})
  t.same(served.body, png)
  t.equal(mediaDelivery.cachedBytes, png.length, 'the image is in memory')
  t.equal((await index.list()).runs.length, 1)

  // Not the HTTP route: any deleter (a retention job, the CLI) goes through the storage.
  await storage.deleteRun(run.run_id)
  t.equal(mediaDelivery.cachedBytes, 0, 'evicted by the run.deleted event')
  await t.rejects(mediaDelivery.deliver(run.run_id, output, {}), { code: 'BLOB_NOT_FOUND' }, 'nothing is served from memory any more')
  t.same((await index.list()).runs, [])
  t.same((await readdir(runsDir)).filter((n) => !n.startsWith('.index') && n !== '.runstore.lock'), [], 'no run folder left, only the index files')
})

t.test('a second start reads the index it left, and close is idempotent', async (t) => {
  const runsDir = await tempRunsDir(t)
  const first = await createRunstore(testConfig(runsDir))
  const run = await first.storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'Blume' })
  await first.close()
  await first.close()
  t.equal(await first.index.isOpen(), false)

  const heard: Array<[string, Record<string, unknown>]> = []
  const logger = { info: (o: Record<string, unknown>, m: string) => { heard.push([m, o]) }, warn: (o: Record<string, unknown>, m: string) => { heard.push([m, o]) }, error: (o: Record<string, unknown>, m: string) => { heard.push([m, o]) } }
  const second = await createRunstore(testConfig(runsDir), { logger: logger as never })
  t.teardown(async () => { await second.close() })
  t.same((await second.index.list()).runs.map((r) => r.run_id), [run.run_id])
  t.same(heard, [], 'a clean index needs no catching up, and says nothing')
})

t.test('a broken pipeline file stops the start before the store is touched', async (t) => {
  const runsDir = await tempRunsDir(t)
  const configs = await tempRunsDir(t)
  await t.rejects(createRunstore(testConfig(join(runsDir, 'never'), { CONFIGS_DIR: configs })), /pipelines|outputs|ENOENT/)
  t.same(await readdir(runsDir), [], 'no runs folder, no index')
})
