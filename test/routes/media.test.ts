import t from 'tap'
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { fixtures } from '../fixtures/media.js'
import { build } from '../helper.js'

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex')

async function setup (t: Parameters<typeof build>[0], env: Record<string, string> = {}) {
  const app = await build(t, env)
  const run = (await app.inject({ method: 'POST', url: '/api/runs', payload: { schema: 'dada', execution_mode: 'eco', input_text: 'Eine Blume' } })).json()
  const add = async (file: string, mediaType?: string) => {
    const res = await app.inject({ method: 'POST', url: `/api/runs/${run.run_id}/media`, payload: { source: 'data', data: (await readFile(file)).toString('base64'), config: 'test', ...(mediaType ? { media_type: mediaType } : {}) } })
    t.equal(res.statusCode, 201, `stored ${file}`)
    return res.json()
  }
  return { app, runId: run.run_id as string, add }
}

t.test('media answers carry the bytes and the contract\'s headers', async (t) => {
  const { app, runId, add } = await setup(t)
  const png = await readFile(fixtures.png.file)
  const output = await add(fixtures.png.file)
  const res = await app.inject({ url: `/api/media/image/${runId}` })
  t.equal(res.statusCode, 200)
  t.same(res.rawPayload, png)
  t.equal(res.headers['content-type'], 'image/png')
  t.equal(res.headers['content-length'], String(png.length))
  t.equal(res.headers['accept-ranges'], 'bytes')
  t.equal(res.headers.etag, `"${sha256(png)}"`)
  t.equal(res.headers['last-modified'], new Date(output.created_at).toUTCString())
  t.match(res.headers['cache-control'], /immutable/)
  t.equal(res.headers['x-content-type-options'], 'nosniff')
  t.equal(res.headers['content-disposition'], 'inline; filename="output_image.png"')

  const download = await app.inject({ url: `/api/media/image/${runId}/0?download=1` })
  t.equal(download.headers['content-disposition'], 'attachment; filename="output_image.png"')
  t.same(download.rawPayload, png)

  const head = await app.inject({ method: 'HEAD', url: `/api/media/image/${runId}` })
  t.equal(head.statusCode, 200)
  t.equal(head.headers['content-length'], String(png.length))
  t.equal(head.headers['content-type'], 'image/png')
  t.equal(head.rawPayload.length, 0)

  const again = await app.inject({ url: `/api/media/image/${runId}`, headers: { 'if-none-match': res.headers.etag as string } })
  t.equal(again.statusCode, 304)
  t.equal(again.rawPayload.length, 0)
  t.equal(again.headers.etag, res.headers.etag)

  const range = await app.inject({ url: `/api/media/image/${runId}`, headers: { range: 'bytes=0-15' } })
  t.equal(range.statusCode, 206)
  t.same(range.rawPayload, png.subarray(0, 16))
  t.equal(range.headers['content-range'], `bytes 0-15/${png.length}`)
  t.equal(range.headers['content-length'], '16')

  const bad = await app.inject({ url: `/api/media/image/${runId}`, headers: { range: `bytes=${png.length + 10}-` } })
  t.equal(bad.statusCode, 416)
  t.equal(bad.headers['content-range'], `bytes */${png.length}`)
  t.match(bad.json(), { statusCode: 416, error: 'Range Not Satisfiable', code: 'RANGE_NOT_SATISFIABLE', message: new RegExp(`${png.length} bytes`) })
  t.match(bad.headers['content-type'], /^application\/json/)
  t.equal(bad.headers['cache-control'], 'no-store', 'the immutable caching of the file does not apply to an error')
  t.notOk(bad.headers.etag)
  t.equal(bad.headers['x-content-type-options'], 'nosniff')
  const notReady = await app.inject({ url: `/api/media/audio/${runId}` })
  t.equal(notReady.headers['cache-control'], 'no-store', 'nor may a 404 be cached: the run may still make it')
  const noRoute = await app.inject({ url: '/api/nothing' })
  t.equal(noRoute.headers['cache-control'], 'no-store')

  const file = await app.inject({ url: `/api/runs/${runId}/files/output_image.png` })
  t.equal(file.statusCode, 200)
  t.same(file.rawPayload, png)
  t.equal(file.headers.etag, res.headers.etag)
})

t.test('every media type, by index and newest, with the detected MIME type', async (t) => {
  const { app, runId, add } = await setup(t)
  await add(fixtures.png.file)
  await add(fixtures.jpeg.file)
  await add(fixtures.wav.file, 'audio')
  await add(fixtures.mp3.file)
  await add(fixtures.mp4.file, 'video')
  await add(fixtures.glb.file, 'model3d')
  const expectations: Array<[string, string, Buffer]> = [
    [`/api/media/image/${runId}`, 'image/jpeg', await readFile(fixtures.jpeg.file)],
    [`/api/media/image/${runId}/0`, 'image/png', await readFile(fixtures.png.file)],
    [`/api/media/image/${runId}/1`, 'image/jpeg', await readFile(fixtures.jpeg.file)],
    [`/api/media/audio/${runId}/0`, fixtures.wav.mime_type, await readFile(fixtures.wav.file)],
    [`/api/media/audio/${runId}`, 'audio/mpeg', await readFile(fixtures.mp3.file)],
    [`/api/media/video/${runId}`, 'video/mp4', await readFile(fixtures.mp4.file)],
    [`/api/media/model3d/${runId}`, 'model/gltf-binary', await readFile(fixtures.glb.file)]
  ]
  for (const [url, mime, bytes] of expectations) {
    const res = await app.inject({ url })
    t.equal(res.statusCode, 200, url)
    t.equal(res.headers['content-type'], mime, url)
    t.same(res.rawPayload, bytes, url)
  }

  const info = (await app.inject({ url: `/api/media/info/${runId}` })).json()
  t.match(info, { run_id: runId, schema: 'dada', execution_mode: 'eco', status: 'created', type: 'model3d', url: `/api/media/model3d/${runId}/0` })
  t.same(info.outputs.map((o: any) => o.url), [
    `/api/media/image/${runId}/0`, `/api/media/image/${runId}/1`, `/api/media/audio/${runId}/0`,
    `/api/media/audio/${runId}/1`, `/api/media/video/${runId}/0`, `/api/media/model3d/${runId}/0`
  ])
  for (const o of info.outputs) t.equal((await app.inject({ url: o.url })).statusCode, 200, o.url)

  for (const url of [`/api/media/image/${runId}/-1`, `/api/media/image/${runId}/x`, '/api/media/image/%2e%2e%2f', '/api/media/image/not-a-run/0']) {
    const res = await app.inject({ url })
    t.equal(res.statusCode, 400, url)
  }
  t.match((await app.inject({ url: '/api/media/image/not-a-run' })).json(), { code: 'INVALID_RUN_ID' })
  t.equal((await app.inject({ url: `/api/media/hologram/${runId}` })).statusCode, 404)
})

t.test('MEDIA_NOT_READY while running, MEDIA_NOT_FOUND once ended; info says which', async (t) => {
  const { app, runId } = await setup(t)
  const empty = (await app.inject({ url: `/api/media/info/${runId}` })).json()
  t.match(empty, { status: 'created', type: null, url: null, outputs: [] })
  await app.inject({ method: 'PATCH', url: `/api/runs/${runId}`, payload: { status: 'running' } })
  const notReady = await app.inject({ url: `/api/media/audio/${runId}` })
  t.equal(notReady.statusCode, 404)
  t.match(notReady.json(), { statusCode: 404, error: 'Not Found', code: 'MEDIA_NOT_READY' })
  t.match((await app.inject({ url: `/api/media/info/${runId}` })).json(), { status: 'running', type: null })
  await app.inject({ method: 'PATCH', url: `/api/runs/${runId}`, payload: { status: 'completed' } })
  const notFound = await app.inject({ url: `/api/media/audio/${runId}/0` })
  t.equal(notFound.statusCode, 404)
  t.match(notFound.json(), { code: 'MEDIA_NOT_FOUND' })
  t.match((await app.inject({ url: `/api/media/info/${runId}` })).json(), { status: 'completed' })
  const unknownRun = await app.inject({ url: '/api/media/info/0193f1e2-7c4a-7b9e-8d2f-4c1a2b3c4d5e' })
  t.match(unknownRun.json(), { statusCode: 404, code: 'RUN_NOT_FOUND' })
})

t.test('files of the run by the names the metadata lists, and nothing else', async (t) => {
  const { app, runId, add } = await setup(t)
  await add(fixtures.png.file)
  const metadata = await app.inject({ url: `/api/runs/${runId}/files/metadata.json` })
  t.equal(metadata.statusCode, 200)
  t.match(metadata.headers['content-type'], /^application\/json/)
  t.equal(metadata.json().outputs.length, 1)
  const input = await app.inject({ url: `/api/runs/${runId}/files/input_text.txt?download=1` })
  t.equal(input.body, 'Eine Blume')
  t.equal(input.headers['content-disposition'], 'attachment; filename="input_text.txt"')
  for (const name of ['..%2Fmetadata.json', '.tmp-x', 'transformed_text.txt', 'output_image_2.png', '%2Fetc%2Fpasswd']) {
    const res = await app.inject({ url: `/api/runs/${runId}/files/${name}` })
    t.equal(res.statusCode, 404, name)
    t.match(res.json(), { code: 'FILE_NOT_FOUND' })
  }
})

t.test('over a real socket: ranges of a large file stream from the store; a hot file is served from memory', async (t) => {
  const { app, runId, add } = await setup(t, { MEDIA_CACHE_MAX_FILE_BYTES: '1024' })
  const mp4 = await readFile(fixtures.mp4.file)
  await add(fixtures.mp4.file)
  await add(fixtures.png.file)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`

  const whole = await fetch(`${base}/api/media/video/${runId}`)
  t.equal(whole.status, 200)
  t.same(Buffer.from(await whole.arrayBuffer()), mp4)
  t.equal(app.mediaDelivery.cachedBytes, 0, 'a file over the cache limit is not kept in memory')

  const tail = await fetch(`${base}/api/media/video/${runId}`, { headers: { Range: 'bytes=-100' } })
  t.equal(tail.status, 206)
  t.equal(tail.headers.get('content-range'), `bytes ${mp4.length - 100}-${mp4.length - 1}/${mp4.length}`)
  t.same(Buffer.from(await tail.arrayBuffer()), mp4.subarray(mp4.length - 100))

  const middle = await fetch(`${base}/api/media/video/${runId}/0`, { headers: { Range: 'bytes=1000-1999' } })
  t.equal(middle.status, 206)
  t.same(Buffer.from(await middle.arrayBuffer()), mp4.subarray(1000, 2000))

  const unsatisfiable = await fetch(`${base}/api/media/video/${runId}`, { headers: { Range: 'bytes=abc' } })
  t.equal(unsatisfiable.status, 416)

  const png = await readFile(fixtures.png.file)
  const small = await fetch(`${base}/api/media/image/${runId}`)
  t.same(Buffer.from(await small.arrayBuffer()), png)
  t.equal(app.mediaDelivery.cachedBytes, png.length > 1024 ? 0 : png.length)
})

t.test('a hot file is answered from memory after the first request', async (t) => {
  const { app, runId, add } = await setup(t)
  const png = await readFile(fixtures.png.file)
  await add(fixtures.png.file)
  t.equal(app.mediaDelivery.cachedBytes, 0)
  const responses = await Promise.all(Array.from({ length: 10 }, async () => await app.inject({ url: `/api/media/image/${runId}` })))
  for (const res of responses) t.same(res.rawPayload, png)
  t.equal(app.mediaDelivery.cachedBytes, png.length, 'read once, kept once')
})
