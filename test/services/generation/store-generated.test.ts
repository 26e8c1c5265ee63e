import t from 'tap'
import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import type { MediaItem } from '../../../services/backends/types.js'
import { BackendFailedError } from '../../../services/errors.js'
import { storeGeneratedMedia } from '../../../services/generation/store-generated.js'
import { FetchPolicy } from '../../../services/http/address-policy.js'
import { MediaIngester } from '../../../services/storage/ingest.js'
import { LocalBlobStore } from '../../../services/storage/blob/local.js'
import { RunStorage } from '../../../services/storage/run-storage.js'
import { fixtures } from '../../fixtures/media.js'
import { tempRunsDir } from '../../helper.js'

async function setup (t: Parameters<typeof tempRunsDir>[0]) {
  const runsDir = await tempRunsDir(t)
  const storage = new RunStorage({ blobs: new LocalBlobStore(runsDir), ingester: new MediaIngester({ maxBytes: 1 << 20, fetchTimeoutMs: 1000, maxRedirects: 0, fetchPolicy: new FetchPolicy() }) })
  await storage.init()
  const run = await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'x' })
  return { storage, runsDir, runId: run.run_id }
}

t.test('a backend that fails after one of two items keeps the first and returns the error', async (t) => {
  const { storage, runsDir, runId } = await setup(t)
  const png = await readFile(fixtures.png.file)
  const seen: string[] = []
  async function * generate (): AsyncIterable<MediaItem> {
    yield { body: Readable.from([png]), media_type: 'image', source: { kind: 'comfyui', node_id: '9' } }
    throw new BackendFailedError('comfyui', 'node 12 raised')
  }
  const result = await storeGeneratedMedia(storage, runId, generate(), { config: 'sd35_large', backend: 'comfyui', onStored: (o) => { seen.push(o.filename) } })
  t.match(result, { outputs: [{ filename: 'output_image.png', source: { kind: 'comfyui', node_id: '9' } }], error: { code: 'BACKEND_FAILED' } })
  t.same(seen, ['output_image.png'])
  t.same((await readdir(join(runsDir, runId))).sort(), ['input_text.txt', 'metadata.json', 'output_image.png'])
})

t.test('an item that is not what it claims stops the generation; the generator is closed', async (t) => {
  const { storage, runId } = await setup(t)
  let closed = false
  async function * generate (): AsyncIterable<MediaItem> {
    try {
      yield { body: await readFile(fixtures.wav.file), source: { kind: 'x' } }
      yield { body: await readFile(fixtures.png.file), source: { kind: 'x' } }
    } finally {
      closed = true
    }
  }
  const result = await storeGeneratedMedia(storage, runId, generate(), { config: 'c', backend: 'b', media_type: 'image' })
  t.match(result, { outputs: [], error: { code: 'MEDIA_TYPE_MISMATCH' } })
  t.ok(closed, 'the backend was told to stop')
})

t.test('a generator whose image arrives cut off stores nothing and fails as the backend\'s fault, naming MEDIA_CORRUPT', async (t) => {
  const { storage, runsDir, runId } = await setup(t)
  const png = await readFile(fixtures.png.file)
  async function * generate (): AsyncIterable<MediaItem> {
    // what a backend hands on when its download broke off without an error
    yield { body: Readable.from([png.subarray(0, png.length >> 1)]), media_type: 'image', source: { kind: 'comfyui', node_id: '9' } }
  }
  const result = await storeGeneratedMedia(storage, runId, generate(), { config: 'sd35_large', backend: 'comfyui' })
  t.match(result, { outputs: [], error: { code: 'BACKEND_FAILED', statusCode: 502, message: /backend comfyui failed: it produced media that cannot be stored \(MEDIA_CORRUPT: .*png file is truncated or corrupt/ } })
  t.same((await readdir(join(runsDir, runId))).sort(), ['input_text.txt', 'metadata.json'])
  t.same((await storage.getMetadata(runId)).outputs, [])
})
