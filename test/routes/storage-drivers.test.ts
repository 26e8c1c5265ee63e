import t from 'tap'
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { fixtures } from '../fixtures/media.js'
import { build, multipartBody } from '../helper.js'
import { startFakeS3 } from '../fakes/s3-server.js'
import { driverEnv, eachDriver } from '../storage-drivers.js'

// The HTTP answers that depend on where the bytes are, on every STORAGE_DRIVER: uploads, media with ranges and ETags, listings, the trash.

const ADMIN_TOKEN = 'admin-token-0123456789'
const admin = { authorization: `Bearer ${ADMIN_TOKEN}` }
const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex')

type App = Awaited<ReturnType<typeof build>>

async function upload (app: App, runId: string, file: Buffer, filename: string): Promise<any> {
  const form = multipartBody([{ name: 'config', value: 'upload' }, { name: 'file', value: file, filename }])
  const res = await app.inject({ method: 'POST', url: `/api/runs/${runId}/media`, headers: { 'content-type': form.contentType }, payload: form.body })
  if (res.statusCode !== 201) throw new Error(`upload answered ${res.statusCode}: ${res.body}`)
  return res.json()
}

const newRun = async (app: App): Promise<string> => (await app.inject({ method: 'POST', url: '/api/runs', payload: { schema: 'dada', execution_mode: 'eco', input_text: 'Eine Blume', user_id: 'DOE_J' } })).json().run_id

eachDriver(t, 'uploads are stored and served whole, in ranges (suffix ranges too) and by ETag', async (t, driver) => {
  const { env } = await driverEnv(t, driver)
  // A small memory cache: the video is read from the store, the picture from memory.
  const app = await build(t, { ...env, MEDIA_CACHE_MAX_FILE_BYTES: String(64 * 1024) })
  const runId = await newRun(app)
  const png = await readFile(fixtures.png.file)
  const webm = await readFile(fixtures.webm.file)
  t.match(await upload(app, runId, png, 'drawing.png'), { index: 0, filename: 'output_image.png', sha256: sha256(png) })
  t.match(await upload(app, runId, webm, 'clip.webm'), { index: 1, filename: 'output_video.webm', sha256: sha256(webm) })
  t.match(await upload(app, runId, png, 'again.png'), { index: 2, filename: 'output_image_2.png' })

  for (const [url, bytes] of [[`/api/media/image/${runId}/0`, png], [`/api/media/video/${runId}`, webm]] as const) {
    const whole = await app.inject({ url })
    t.equal(whole.statusCode, 200, url)
    t.same(whole.rawPayload, bytes)
    t.equal(whole.headers.etag, `"${sha256(bytes)}"`)
    t.equal(whole.headers['accept-ranges'], 'bytes')
    const part = await app.inject({ url, headers: { range: 'bytes=10-109' } })
    t.equal(part.statusCode, 206)
    t.equal(part.headers['content-range'], `bytes 10-109/${bytes.length}`)
    t.same(part.rawPayload, bytes.subarray(10, 110))
    const tail = await app.inject({ url, headers: { range: 'bytes=-16' } })
    t.equal(tail.statusCode, 206)
    t.same(tail.rawPayload, bytes.subarray(bytes.length - 16))
    t.equal((await app.inject({ url, headers: { 'if-none-match': whole.headers.etag as string } })).statusCode, 304)
    t.equal((await app.inject({ url, headers: { range: `bytes=${bytes.length}-` } })).statusCode, 416)
  }
  const info = (await app.inject({ url: `/api/media/info/${runId}` })).json()
  t.same(info.outputs.map((o: any) => o.filename), ['output_image.png', 'output_video.webm', 'output_image_2.png'])
  t.same((await app.inject({ url: `/api/runs/${runId}/files/input_text.txt` })).body, 'Eine Blume')
  const listed = (await app.inject({ url: '/api/runs?media_type=video' })).json()
  t.same(listed.runs.map((r: any) => r.run_id), [runId], 'the index heard of it')
})

eachDriver(t, 'a pipeline run is stored and served; a deleted run goes to the trash and comes back byte for byte', async (t, driver) => {
  const { env } = await driverEnv(t, driver)
  const app = await build(t, { ...env, ADMIN_TOKEN })
  const executed = await app.inject({ method: 'POST', url: '/api/schema/pipeline/execute', payload: { schema: 'dada', input_text: 'Eine Blume auf der Wiese' } })
  t.equal(executed.statusCode, 200)
  const runId = executed.json().run_id
  const image = await app.inject({ url: `/api/media/image/${runId}` })
  t.equal(image.statusCode, 200)
  t.equal(image.headers.etag, `"${sha256(image.rawPayload)}"`)
  const metadata = (await app.inject({ url: `/api/runs/${runId}` })).json()
  t.equal(metadata.status, 'completed')

  t.equal((await app.inject({ method: 'DELETE', url: `/api/runs/${runId}`, headers: admin })).statusCode, 204)
  t.equal((await app.inject({ url: `/api/runs/${runId}` })).statusCode, 404)
  t.same((await app.inject({ url: '/api/runs' })).json().runs, [])
  t.same((await app.inject({ url: '/api/trash', headers: admin })).json().runs.map((r: any) => r.run_id), [runId])
  t.equal((await app.inject({ method: 'POST', url: `/api/trash/${runId}/restore`, headers: admin })).statusCode, 200)
  t.same((await app.inject({ url: `/api/media/image/${runId}` })).rawPayload, image.rawPayload)
  t.same((await app.inject({ url: `/api/runs/${runId}` })).json(), metadata)
  t.same((await app.inject({ url: '/api/runs' })).json().runs.map((r: any) => r.run_id), [runId])
})

t.test('two instances on one bucket upload into the same run at once: every output is listed, none replaced', async (t) => {
  const s3 = await startFakeS3(t)
  const one = await build(t, s3.env)
  const two = await build(t, s3.env)
  const runId = await newRun(one)
  const png = await readFile(fixtures.png.file)
  const mp3 = await readFile(fixtures.mp3.file)
  // The second instance knows the run before the first writes it again: its version is outdated when it writes.
  t.equal((await two.inject({ url: `/api/runs/${runId}` })).statusCode, 200)
  const uploads = await Promise.all([
    ...Array.from({ length: 4 }, async () => await upload(one, runId, png, 'a.png')),
    ...Array.from({ length: 4 }, async () => await upload(two, runId, mp3, 'b.mp3'))
  ])
  t.same(uploads.map((o) => o.filename).sort(), ['output_audio.mp3', 'output_audio_2.mp3', 'output_audio_3.mp3', 'output_audio_4.mp3', 'output_image.png', 'output_image_2.png', 'output_image_3.png', 'output_image_4.png'])
  const stored = (await one.runstore.storage.readMetadata(runId)).outputs
  t.same(stored.map((o) => o.filename).sort(), uploads.map((o) => o.filename).sort(), 'metadata.json lists all eight')
  t.same(stored.map((o) => o.index), [0, 1, 2, 3, 4, 5, 6, 7])
  for (const output of stored) {
    t.same((await two.inject({ url: `/api/runs/${runId}/files/${output.filename}` })).rawPayload, output.type === 'image' ? png : mp3, output.filename)
  }
})

t.test('S3_MEDIA_REDIRECT: media answers point to a presigned URL with the same headers; 304 stays', async (t) => {
  const s3 = await startFakeS3(t)
  const app = await build(t, { ...s3.env, S3_MEDIA_REDIRECT: 'true' })
  const runId = await newRun(app)
  const png = await readFile(fixtures.png.file)
  await upload(app, runId, png, 'drawing.png')
  const res = await app.inject({ url: `/api/media/image/${runId}`, headers: { range: 'bytes=0-9' } })
  t.equal(res.statusCode, 302)
  t.equal(res.headers['cache-control'], 'private, no-store')
  const location = res.headers.location as string
  t.match(location, new RegExp(`^${s3.endpoint}/${s3.bucket}/${runId}/output_image.png\\?.*response-content-type=image%2Fpng`))
  const fetched = await fetch(location)
  t.equal(fetched.status, 200)
  t.same(Buffer.from(await fetched.arrayBuffer()), png)
  t.equal((await app.inject({ url: `/api/media/image/${runId}`, headers: { 'if-none-match': `"${sha256(png)}"` } })).statusCode, 304)
})
