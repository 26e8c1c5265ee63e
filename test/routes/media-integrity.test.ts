import t from 'tap'
import { readFile } from 'node:fs/promises'
import { loadConfig } from '../../config.js'
import { fixtures } from '../fixtures/media.js'
import { forgedPng } from '../forged-png.js'
import { serveBytes, startMediaServer } from '../fakes/media-server.js'
import { build, multipartBody, storedView, tempRunsDir } from '../helper.js'

// Issue 9: broken or forged media must not be stored as if whole, however it arrives.

async function setup (t: Parameters<typeof build>[0], env: Record<string, string> = {}) {
  const runsDir = await tempRunsDir(t)
  const app = await build(t, { RUNS_DIR: runsDir, ...env })
  const run = (await app.inject({ method: 'POST', url: '/api/runs', payload: { schema: 'dada', execution_mode: 'eco', input_text: 'Eine Blume auf der Wiese' } })).json()
  const stored = storedView(runsDir)
  const upload = async (file: Buffer, filename: string) => {
    const form = multipartBody([{ name: 'config', value: 'upload' }, { name: 'file', value: file, filename }])
    return await app.inject({ method: 'POST', url: `/api/runs/${run.run_id}/media`, headers: { 'content-type': form.contentType }, payload: form.body })
  }
  return { app, runId: run.run_id as string, stored, upload }
}

t.test('an upload that is cut off or forged answers 422 with its code and stores nothing', async (t) => {
  const { app, runId, stored, upload } = await setup(t)
  const png = await readFile(fixtures.png.file)
  const jpeg = await readFile(fixtures.jpeg.file)
  const mp4 = await readFile(fixtures.mp4.file)
  const wav = await readFile(fixtures.wav.file)
  const overclaiming = Buffer.from(wav)
  overclaiming.writeUInt32LE(wav.readUInt32LE(40) + 10_000, 40) // the data chunk claims more bytes than the file has

  const cases: Array<[string, Buffer, string, string, RegExp]> = [
    ['a PNG cut to 60 bytes', png.subarray(0, 60), 'x.png', 'MEDIA_CORRUPT', /^the png file is truncated or corrupt: /],
    ['a PNG cut in half', png.subarray(0, png.length >> 1), 'x.png', 'MEDIA_CORRUPT', /png file is truncated or corrupt/],
    ['a JPEG cut in half', jpeg.subarray(0, jpeg.length >> 1), 'x.jpg', 'MEDIA_CORRUPT', /jpg file is truncated or corrupt: it ends inside its image data/],
    ['a 100-byte PNG that claims 100000 × 100000', forgedPng(), 'bomb.png', 'IMAGE_TOO_LARGE', /100000 × 100000 pixels, more than the limit of 50000000 pixels/],
    ['an MP4 cut in half', mp4.subarray(0, mp4.length >> 1), 'x.mp4', 'MEDIA_CORRUPT', /mp4 file is truncated or corrupt/],
    ['a WAV whose data chunk claims more than the file has', overclaiming, 'x.wav', 'MEDIA_CORRUPT', /wav file is truncated or corrupt: its "data" chunk runs past the end of the file/]
  ]
  for (const [name, bytes, filename, code, message] of cases) {
    const res = await upload(bytes, filename)
    t.equal(res.statusCode, 422, name)
    t.strictSame(Object.keys(res.json()).sort(), ['code', 'error', 'message', 'statusCode'], `${name}: the contract's error shape`)
    t.match(res.json(), { statusCode: 422, error: 'Unprocessable Entity', code, message }, name)
    t.same(await stored.list(runId), ['input_text.txt', 'metadata.json'], `${name}: nothing stored for the run`)
    t.same((await app.inject({ url: `/api/runs/${runId}` })).json().outputs, [], `${name}: no output in the metadata`)
  }
  t.equal((await upload(png, 'x.png')).statusCode, 201, 'the whole PNG is stored')
})

t.test('a data URI or a URL that delivers a broken file is refused the same way', async (t) => {
  const { app, runId, stored } = await setup(t)
  const jpeg = await readFile(fixtures.jpeg.file)
  const webm = await readFile(fixtures.webm.file)
  const server = await startMediaServer({ '/clip.webm': serveBytes(webm.subarray(0, webm.length - 100), 'video/webm') })
  t.teardown(server.close)

  const fromData = await app.inject({ method: 'POST', url: `/api/runs/${runId}/media`, payload: { source: 'data', data: `data:image/jpeg;base64,${jpeg.subarray(0, 2000).toString('base64')}`, config: 'c' } })
  t.equal(fromData.statusCode, 422)
  t.match(fromData.json(), { code: 'MEDIA_CORRUPT', message: /jpg file is truncated or corrupt/ })
  const fromUrl = await app.inject({ method: 'POST', url: `/api/runs/${runId}/media`, payload: { source: 'url', url: `${server.url}/clip.webm`, config: 'c' } })
  t.equal(fromUrl.statusCode, 422)
  t.match(fromUrl.json(), { code: 'MEDIA_CORRUPT', message: /webm file is truncated or corrupt: an element at byte \d+ runs past the end of the file/ })
  t.same(await stored.list(runId), ['input_text.txt', 'metadata.json'])
})

t.test('MAX_IMAGE_PIXELS: about 50 MP by default, set lower it refuses larger images', async (t) => {
  t.equal(loadConfig({}).MAX_IMAGE_PIXELS, 50_000_000)
  t.throws(() => loadConfig({ MAX_IMAGE_PIXELS: '0' }), /MAX_IMAGE_PIXELS/)
  const { app, runId, upload } = await setup(t, { MAX_IMAGE_PIXELS: String(64 * 48) })
  t.equal((await upload(await readFile(fixtures.png.file), 'x.png')).statusCode, 201, '64 × 48 is at the limit')
  const jpeg = await upload(await readFile(fixtures.jpeg.file), 'x.jpg')
  t.equal(jpeg.statusCode, 422)
  t.match(jpeg.json(), { code: 'IMAGE_TOO_LARGE', message: 'the image is 80 × 60 pixels, more than the limit of 3072 pixels' })
  t.equal((await upload(await readFile(fixtures.wav.file), 'x.wav')).statusCode, 201, 'sound has no pixels')
  t.same((await app.inject({ url: `/api/runs/${runId}` })).json().outputs.map((o: { format: string }) => o.format), ['png', 'wav'])

  const api = (await app.inject({ url: '/openapi.json' })).json()
  t.ok(api.paths['/api/runs/{run_id}/media'].post.responses['422'], 'the OpenAPI document lists the 422')
})
