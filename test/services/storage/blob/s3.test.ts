import t from 'tap'
import { writeFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { BlobConflictError, BlobExistsError } from '../../../../services/storage/blob/blob-store.js'
import { createBlobStore } from '../../../../services/storage/blob/create-blob-store.js'
import { S3BlobStore } from '../../../../services/storage/blob/s3.js'
import { uuidv7 } from '../../../../services/storage/run-id.js'
import { startFakeS3, type FakeS3 } from '../../../fakes/s3-server.js'
import { tempRunsDir, testConfig } from '../../../helper.js'

// What only an object store does: key layout, conditional writes between instances, multipart, the sweep by age, presigned URLs.

const metadata = (runId: string, outputs: string[] = []): string => JSON.stringify({ run_id: runId, outputs: outputs.map((filename) => ({ filename })) })

async function storeOn (t: Parameters<typeof startFakeS3>[0], s3: FakeS3, options: { prefix?: string, sweepGraceMs?: number, directUrlSeconds?: number } = {}): Promise<S3BlobStore> {
  const blobs = new S3BlobStore({ client: s3.client, bucket: s3.bucket, stagingDir: join(await tempRunsDir(t), 'staging'), ...options })
  await blobs.prepare()
  return blobs
}

const keysOf = async (s3: FakeS3): Promise<string[]> => {
  const { ListObjectsV2Command } = await import('@aws-sdk/client-s3')
  return ((await s3.client.send(new ListObjectsV2Command({ Bucket: s3.bucket }))).Contents ?? []).map((o) => o.Key!).sort()
}
const putRaw = async (s3: FakeS3, key: string, body: string | Buffer): Promise<void> => { await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: body })) }

t.test('runs are key prefixes under S3_PREFIX; a run is there once its metadata.json is', async (t) => {
  const s3 = await startFakeS3(t)
  const blobs = await storeOn(t, s3, { prefix: '/lab/runs/' })
  t.equal(blobs.description, `s3://${s3.bucket}/lab/runs/`)
  const runId = uuidv7()
  await blobs.createRun(runId, [['input_text.txt', 'Blume'], ['metadata.json', metadata(runId)]])
  t.same(await keysOf(s3), [`lab/runs/${runId}/input_text.txt`, `lab/runs/${runId}/metadata.json`])
  const half = uuidv7()
  await putRaw(s3, `lab/runs/${half}/input_text.txt`, 'x')
  await putRaw(s3, 'lab/runs/not-a-run/metadata.json', '{}')
  await putRaw(s3, 'elsewhere/metadata.json', '{}')
  t.same(await blobs.listRuns(), [runId], 'a run without metadata.json, a stranger and keys outside the prefix are no runs')
  t.equal(await blobs.space(), null, 'a bucket has no size to fill')
})

t.test('metadata.json is replaced only over the version this instance saw: two instances never lose each other\'s writes', async (t) => {
  const s3 = await startFakeS3(t)
  const a = await storeOn(t, s3)
  const b = await storeOn(t, s3)
  const runId = uuidv7()
  await a.createRun(runId, [['metadata.json', metadata(runId)]])
  await t.rejects(b.writeFiles(runId, [['metadata.json', metadata(runId, ['b.png'])]]), BlobConflictError, 'b never read it: no blind write')
  await b.read(runId, 'metadata.json')
  await a.writeFiles(runId, [['transformed_text.txt', 'A flower'], ['metadata.json', metadata(runId, ['a.png'])]])
  await t.rejects(b.writeFiles(runId, [['metadata.json', metadata(runId, ['b.png'])]]), BlobConflictError, 'a wrote since b read')
  t.same(JSON.parse((await a.read(runId, 'metadata.json')).toString()).outputs, [{ filename: 'a.png' }], 'a\'s write stands')
  await b.read(runId, 'metadata.json')
  await b.writeFiles(runId, [['metadata.json', metadata(runId, ['a.png', 'b.png'])]])
  await t.rejects(a.writeFiles(runId, [['metadata.json', metadata(runId)]]), BlobConflictError)
  await b.deleteRun(runId)
  await b.createRun(runId, [['metadata.json', metadata(runId)]])
  await t.rejects(a.writeFiles(runId, [['metadata.json', metadata(runId)]]), BlobConflictError, 'a run made again is a new version too')
  await a.read(runId, 'metadata.json')
  await b.deleteRun(runId)
  await t.rejects(a.writeFiles(runId, [['metadata.json', metadata(runId)]]), BlobConflictError, 'gone meanwhile')
  t.same(await keysOf(s3), [], 'nothing written by a refused write')
})

t.test('large media go up in parts, never over an existing object, and are read back in ranges', async (t) => {
  const s3 = await startFakeS3(t)
  const blobs = await storeOn(t, s3)
  const runId = uuidv7()
  await blobs.createRun(runId, [['metadata.json', metadata(runId)]])
  const bytes = Buffer.from(Array.from({ length: 9 * 1024 * 1024 + 3 }, (_, i) => (i * 13) % 256))
  const path = blobs.stagingPath(runId)
  await writeFile(path, bytes)
  const staged = { path, size: bytes.length, durable: Promise.resolve() }
  await blobs.putStaged(runId, 'output_video.mp4', staged)
  t.match(s3.etag(`${runId}/output_video.mp4`), /-2"$/, 'a multipart upload of two parts')
  await t.rejects(blobs.putStaged(runId, 'output_video.mp4', staged), BlobExistsError, 'a multipart upload never completes over an object')
  t.same(await blobs.read(runId, 'output_video.mp4'), bytes)
  const end = bytes.length - 1
  t.same(Buffer.concat(await (await blobs.open(runId, 'output_video.mp4', { start: end - 99, end })).toArray()), bytes.subarray(end - 99))
  t.same(Buffer.concat(await (await blobs.open(runId, 'output_video.mp4', { start: 8 * 1024 * 1024 - 2, end: 8 * 1024 * 1024 + 1 })).toArray()), bytes.subarray(8 * 1024 * 1024 - 2, 8 * 1024 * 1024 + 2), 'across the parts')
  await blobs.discardStaged(staged)
  t.same(await readdir(join(path, '..')), [], 'the staging file is gone')
})

t.test('the sweep removes what crashes left once it is older than the grace period, and nothing younger', async (t) => {
  const s3 = await startFakeS3(t)
  const patient = await storeOn(t, s3)
  const runId = uuidv7()
  await patient.createRun(runId, [['input_text.txt', 'x'], ['output_image.png', 'png'], ['metadata.json', metadata(runId, ['output_image.png'])]])
  const unfinished = uuidv7()
  await putRaw(s3, `${unfinished}/input_text.txt`, 'never got its metadata.json')
  await putRaw(s3, `${runId}/output_image_2.png`, 'put, never listed')
  await putRaw(s3, `${runId}/notes.txt`, 'copied in by hand')
  const badMetadata = uuidv7()
  await putRaw(s3, `${badMetadata}/metadata.json`, '{ not json')
  await putRaw(s3, `${badMetadata}/output_image.png`, 'kept for a person to look at')
  await putRaw(s3, `.trash/${unfinished}@20261203T101500123Z/input_text.txt`, 'a trashing cut off')
  await putRaw(s3, 'stranger.txt', 'not ours')
  t.same((await patient.recover()).removed, [], 'an hour\'s grace: in-flight writes of other instances look the same')

  const hasty = await storeOn(t, s3, { sweepGraceMs: -1000 })
  const staging = join(await tempRunsDir(t), 'staging')
  const withStaging = new S3BlobStore({ client: s3.client, bucket: s3.bucket, stagingDir: staging, sweepGraceMs: -1000 })
  await withStaging.prepare()
  await writeFile(join(staging, '.tmp-00000000-leftover'), 'a crashed upload')
  const own = withStaging.stagingPath(runId)
  await writeFile(own, 'this store\'s own upload')
  t.same((await withStaging.recover()).removed.sort(), ['.tmp-00000000-leftover', `${runId}/output_image_2.png`, `${unfinished}/input_text.txt`, `.trash/${unfinished}@20261203T101500123Z/input_text.txt`].sort())
  t.same(await readdir(staging), [own.slice(staging.length + 1)], 'its own staging file stays')
  t.same(await keysOf(s3), [`${badMetadata}/metadata.json`, `${badMetadata}/output_image.png`, `${runId}/input_text.txt`, `${runId}/metadata.json`, `${runId}/notes.txt`, `${runId}/output_image.png`, 'stranger.txt'].sort())
  t.same((await hasty.recover()).removed, [])
})

t.test('with direct URLs, a presigned GET of the object; without, none', async (t) => {
  const s3 = await startFakeS3(t)
  const blobs = await storeOn(t, s3, { directUrlSeconds: 600 })
  const runId = uuidv7()
  await blobs.createRun(runId, [['output_image.png', 'png bytes'], ['metadata.json', metadata(runId, ['output_image.png'])]])
  const url = await blobs.directUrl(runId, 'output_image.png', { contentType: 'image/png', contentDisposition: 'inline; filename="output_image.png"', cacheControl: 'public' })
  t.match(url, new RegExp(`^${s3.endpoint}/${s3.bucket}/${runId}/output_image.png\\?.*X-Amz-Expires=600.*response-content-type=image%2Fpng`))
  const answer = await fetch(url!)
  t.equal(answer.status, 200)
  t.equal(await answer.text(), 'png bytes')
  t.equal(await (await storeOn(t, s3)).directUrl(runId, 'output_image.png', { contentType: 'image/png', contentDisposition: 'inline', cacheControl: 'public' }), null)
})

t.test('a bucket that is not there: prepare fails, isWritable says no', async (t) => {
  const s3 = await startFakeS3(t)
  const blobs = new S3BlobStore({ client: s3.client, bucket: 'no-such-bucket', stagingDir: join(await tempRunsDir(t), 'staging') })
  await t.rejects(blobs.prepare(), { $metadata: { httpStatusCode: 404 } } as never)
  t.equal(await blobs.isWritable(), false)
  await t.rejects(blobs.listRuns(), { name: 'NoSuchBucket' })
  const writable = await storeOn(t, s3)
  // /ready probes every few seconds: the SDK's console.warn about a PutObject without a length would bypass the log on each.
  const warnings: unknown[][] = []
  const warn = console.warn
  console.warn = (...args: unknown[]) => { warnings.push(args) }
  try {
    t.equal(await writable.isWritable(), true)
  } finally {
    console.warn = warn
  }
  t.same(warnings, [], 'the probe says how long it is: no warning on the console')
  t.same(await keysOf(s3), [], 'the probe is removed')
  await t.rejects(s3.client.send(new GetObjectCommand({ Bucket: 'no-such-bucket', Key: 'x' })))
})

t.test('STORAGE_DRIVER=s3 is checked at start: a bucket, and both keys or neither', async (t) => {
  const runsDir = await tempRunsDir(t)
  t.throws(() => createBlobStore(testConfig(runsDir, { STORAGE_DRIVER: 's3' })), /needs S3_BUCKET/)
  t.throws(() => createBlobStore(testConfig(runsDir, { STORAGE_DRIVER: 's3', S3_BUCKET: 'runs', S3_ACCESS_KEY_ID: 'id' })), /go together/)
  const store = createBlobStore(testConfig(runsDir, { STORAGE_DRIVER: 's3', S3_BUCKET: 'runs', S3_PREFIX: 'lab' }))
  t.equal(store.description, 's3://runs/lab/', 'the SDK\'s default credentials when no keys are given')
  t.throws(() => testConfig(runsDir, { STORAGE_DRIVER: 'ftp' }))
})

t.test('two instances over one bucket: each reads what the other wrote last, never an old copy from its memory', async (t) => {
  const { RunStorage } = await import('../../../../services/storage/run-storage.js')
  const { MediaIngester } = await import('../../../../services/storage/ingest.js')
  const { FetchPolicy } = await import('../../../../services/http/address-policy.js')
  const { RunNotFoundError } = await import('../../../../services/errors.js')
  const s3 = await startFakeS3(t)
  const instance = async (): Promise<InstanceType<typeof RunStorage>> => new RunStorage({
    blobs: await storeOn(t, s3),
    ingester: new MediaIngester({ maxBytes: 1 << 20, fetchTimeoutMs: 1000, maxRedirects: 0, fetchPolicy: new FetchPolicy() })
  })
  const a = await instance()
  const b = await instance()
  t.ok(a.blobs.shared, 'an object store is shared by design')
  const run = await a.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'Eine Blume' })
  t.equal((await b.getMetadata(run.run_id)).transformed_text, null)
  await a.setTransformedText(run.run_id, 'Eine surreale Blume')
  t.equal((await b.getMetadata(run.run_id)).transformed_text, 'Eine surreale Blume', 'b sees a\'s change')
  await b.setStatus(run.run_id, 'completed')
  t.equal((await a.getMetadata(run.run_id)).status, 'completed', 'and a sees b\'s')
  await b.deleteRun(run.run_id)
  await t.rejects(a.getMetadata(run.run_id), RunNotFoundError, 'a run deleted elsewhere is gone here too')
})
