import t from 'tap'
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fixtures } from '../fixtures/media.js'
import { startMediaServer, serveBytes, serveStatus, serveStall } from '../fakes/media-server.js'
import { build, multipartBody, storedView, tempRunsDir } from '../helper.js'
import { storedMetadata } from '../stored-view.js'

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex')

async function createRun (app: Awaited<ReturnType<typeof build>>, body: Record<string, unknown> = {}) {
  const res = await app.inject({ method: 'POST', url: '/api/runs', payload: { schema: 'dada', execution_mode: 'eco', input_text: 'Eine Blume auf der Wiese', ...body } })
  return res.json()
}

t.test('POST /api/runs creates a run; GET returns the same document as metadata.json', async (t) => {
  const runsDir = await tempRunsDir(t)
  const app = await build(t, { RUNS_DIR: runsDir })
  const stored = storedView(runsDir)
  const res = await app.inject({ method: 'POST', url: '/api/runs', payload: { schema: 'dada', execution_mode: 'eco', input_text: 'Eine Blume auf der Wiese', user_id: 'DOE_J', frontend_version: 'ignored' } })
  t.equal(res.statusCode, 201)
  const run = res.json()
  t.match(run, { metadata_version: 1, status: 'created', schema: 'dada', execution_mode: 'eco', user_id: 'DOE_J', input_text: 'Eine Blume auf der Wiese', outputs: [] })
  t.notOk('frontend_version' in run)
  t.ok(res.headers['x-request-id'], 'every answer names its request')

  const asStored = await storedMetadata(stored, run.run_id)
  const got = await app.inject({ url: `/api/runs/${run.run_id}` })
  t.equal(got.statusCode, 200)
  t.same(got.json(), asStored)
  t.same((await app.inject({ url: `/api/media/run/${run.run_id}` })).json(), asStored, 'the seed\'s route gives the same')
})

t.test('bad requests are clear 4xx JSON errors and write nothing', async (t) => {
  const runsDir = await tempRunsDir(t)
  const app = await build(t, { RUNS_DIR: runsDir })
  const stored = storedView(runsDir)
  const bad = [
    { schema: 'dada', input_text: 'x' },
    { schema: 'dada', execution_mode: 'turbo', input_text: 'x' },
    { schema: '../etc', execution_mode: 'eco', input_text: 'x' },
    { schema: 'dada', execution_mode: 'eco', input_text: '' }
  ]
  for (const payload of bad) {
    const res = await app.inject({ method: 'POST', url: '/api/runs', payload })
    t.equal(res.statusCode, 400, JSON.stringify(payload))
    t.match(res.json(), { statusCode: 400, error: 'Bad Request', code: 'INVALID_REQUEST', message: String })
  }
  const notJson = await app.inject({ method: 'POST', url: '/api/runs', headers: { 'content-type': 'application/json' }, payload: '{"schema": ' })
  t.equal(notJson.statusCode, 400)
  t.match(notJson.json(), { statusCode: 400, code: String })
  t.same(await stored.entries(), [])

  for (const id of ['not-a-uuid', '0193f1e2-7c4a-7b9e-8d2f-4c1a2b3c4d5e.json', '%2e%2e%2fetc', 'x'.repeat(36)]) {
    const res = await app.inject({ url: `/api/runs/${id}` })
    t.equal(res.statusCode, 400, id)
    t.match(res.json(), { statusCode: 400, error: 'Bad Request', code: 'INVALID_RUN_ID' })
  }
  // a literal .. is resolved by the URL itself, so it names another route
  for (const url of ['/api/runs/..', '/api/runs/%2e%2e']) {
    const res = await app.inject({ url })
    t.equal(res.statusCode, 404, url)
    t.match(res.json(), { statusCode: 404, code: 'ROUTE_NOT_FOUND' })
  }
  const missing = await app.inject({ url: '/api/runs/0193f1e2-7c4a-7b9e-8d2f-4c1a2b3c4d5e' })
  t.equal(missing.statusCode, 404)
  t.same(missing.json(), { statusCode: 404, error: 'Not Found', code: 'RUN_NOT_FOUND', message: 'run 0193f1e2-7c4a-7b9e-8d2f-4c1a2b3c4d5e not found' })
  const noRoute = await app.inject({ url: '/api/nothing-here' })
  t.match(noRoute.json(), { statusCode: 404, code: 'ROUTE_NOT_FOUND' })
  t.same(await stored.entries(), [], 'asking created nothing')
})

t.test('PATCH sets the transformed text and moves the status on', async (t) => {
  const runsDir = await tempRunsDir(t)
  const app = await build(t, { RUNS_DIR: runsDir })
  const stored = storedView(runsDir)
  const run = await createRun(app)
  const res = await app.inject({ method: 'PATCH', url: `/api/runs/${run.run_id}`, payload: { transformed_text: 'A surreal flower', status: 'running' } })
  t.equal(res.statusCode, 200)
  t.match(res.json(), { transformed_text: 'A surreal flower', status: 'running' })
  t.equal((await stored.read(run.run_id, 'transformed_text.txt')).toString(), 'A surreal flower')
  const file = await app.inject({ url: `/api/runs/${run.run_id}/files/transformed_text.txt` })
  t.equal(file.statusCode, 200)
  t.equal(file.body, 'A surreal flower')
  t.match(file.headers['content-type'], /^text\/plain/)

  t.equal((await app.inject({ method: 'PATCH', url: `/api/runs/${run.run_id}`, payload: { status: 'completed' } })).statusCode, 200)
  const again = await app.inject({ method: 'PATCH', url: `/api/runs/${run.run_id}`, payload: { status: 'running' } })
  t.equal(again.statusCode, 409)
  t.match(again.json(), { code: 'INVALID_STATUS' })
  const both = await app.inject({ method: 'PATCH', url: `/api/runs/${run.run_id}`, payload: { transformed_text: 'SNEAKY', status: 'running' } })
  t.equal(both.statusCode, 409, 'a refused status refuses the whole patch')
  t.equal((await stored.read(run.run_id, 'transformed_text.txt')).toString(), 'A surreal flower', 'the text was not changed either')
  t.equal((await app.inject({ url: `/api/runs/${run.run_id}` })).json().transformed_text, 'A surreal flower')
  t.equal((await app.inject({ method: 'PATCH', url: `/api/runs/${run.run_id}`, payload: {} })).statusCode, 400, 'an empty patch is refused')
  t.equal((await app.inject({ method: 'PATCH', url: `/api/runs/${run.run_id}`, payload: { status: 'done' } })).statusCode, 400)
  t.equal((await storedMetadata(stored, run.run_id)).status, 'completed')
})

t.test('PATCH with only fields it does not know is refused like {}, and metadata.json is not touched', async (t) => {
  const runsDir = await tempRunsDir(t)
  const app = await build(t, { RUNS_DIR: runsDir })
  const stored = storedView(runsDir)
  const run = await createRun(app)
  const before = await stored.read(run.run_id, 'metadata.json')
  for (const payload of [{}, { foo: 1 }, { transformedText: 'camelCase' }, { status_: 'running', text: 'x' }]) {
    const res = await app.inject({ method: 'PATCH', url: `/api/runs/${run.run_id}`, payload })
    t.equal(res.statusCode, 400, JSON.stringify(payload))
    t.match(res.json(), { statusCode: 400, error: 'Bad Request', code: 'INVALID_REQUEST', message: /transformed_text|status|fewer/ })
  }
  t.same(await stored.read(run.run_id, 'metadata.json'), before, 'metadata.json is byte for byte what it was')
  const known = await app.inject({ method: 'PATCH', url: `/api/runs/${run.run_id}`, payload: { status: 'running', frontend_version: '2.1' } })
  t.equal(known.statusCode, 200, 'unknown fields beside a known one are still ignored')
  t.notOk('frontend_version' in known.json())
})

t.test('a JSON body keeps its own types: a number or an array where a string belongs is refused, not converted', async (t) => {
  const runsDir = await tempRunsDir(t)
  const app = await build(t, { RUNS_DIR: runsDir })
  const stored = storedView(runsDir)
  const create = { schema: 'dada', execution_mode: 'eco', input_text: 'Eine Blume' }
  for (const payload of [
    { ...create, schema: 123 },
    { ...create, schema: ['dada'] },
    { ...create, execution_mode: ['eco'] },
    { ...create, input_text: 42 },
    { ...create, input_text: true },
    { ...create, user_id: 7 },
    { ...create, safety_level: ['kids'] }
  ]) {
    const res = await app.inject({ method: 'POST', url: '/api/runs', payload })
    t.equal(res.statusCode, 400, JSON.stringify(payload))
    t.match(res.json(), { statusCode: 400, code: 'INVALID_REQUEST' })
  }
  t.same(await stored.entries(), [], 'no run was created')

  const run = await createRun(app)
  const before = await stored.read(run.run_id, 'metadata.json')
  for (const payload of [{ transformed_text: 123 }, { transformed_text: ['A flower'] }, { transformed_text: null }, { status: ['running'] }]) {
    const res = await app.inject({ method: 'PATCH', url: `/api/runs/${run.run_id}`, payload })
    t.equal(res.statusCode, 400, JSON.stringify(payload))
    t.match(res.json(), { code: 'INVALID_REQUEST' })
  }
  const data = (await readFile(fixtures.png.file)).toString('base64')
  for (const payload of [{ source: 'data', data, config: 12 }, { source: ['data'], data, config: 'c' }, { source: 'data', data, config: 'c', backend: 5 }, { source: 'data', data: [data], config: 'c' }]) {
    const res = await app.inject({ method: 'POST', url: `/api/runs/${run.run_id}/media`, payload })
    t.equal(res.statusCode, 400, JSON.stringify(payload).slice(0, 60))
    t.match(res.json(), { code: 'INVALID_REQUEST' })
  }
  t.same(await stored.read(run.run_id, 'metadata.json'), before, 'the run is unchanged')
  t.same(await stored.list(run.run_id), ['input_text.txt', 'metadata.json'], 'no file was stored')

  const list = await app.inject({ url: '/api/runs?limit=1&schema=dada' })
  t.equal(list.statusCode, 200, 'a query string is still read as numbers where the schema says so')
  t.equal(list.json().runs.length, 1)
})

t.test('POST /api/runs/:id/media takes multipart uploads, in any field order', async (t) => {
  const runsDir = await tempRunsDir(t)
  const app = await build(t, { RUNS_DIR: runsDir })
  const stored = storedView(runsDir)
  const run = await createRun(app)
  const png = await readFile(fixtures.png.file)
  const mp3 = await readFile(fixtures.mp3.file)
  const webm = await readFile(fixtures.webm.file)

  const first = multipartBody([{ name: 'config', value: 'upload' }, { name: 'media_type', value: 'image' }, { name: 'file', value: png, filename: 'drawing.jpg', contentType: 'image/jpeg' }])
  const res = await app.inject({ method: 'POST', url: `/api/runs/${run.run_id}/media`, headers: { 'content-type': first.contentType }, payload: first.body })
  t.equal(res.statusCode, 201)
  t.match(res.json(), { index: 0, type: 'image', filename: 'output_image.png', format: 'png', backend: 'upload', config: 'upload', sha256: sha256(png), width: fixtures.png.width, height: fixtures.png.height, source: { kind: 'upload', original_filename: 'drawing.jpg' } })

  const fieldsAfterFile = multipartBody([{ name: 'file', value: mp3, filename: 'song.bin' }, { name: 'config', value: 'mic' }])
  const sound = await app.inject({ method: 'POST', url: `/api/runs/${run.run_id}/media`, headers: { 'content-type': fieldsAfterFile.contentType }, payload: fieldsAfterFile.body })
  t.equal(sound.statusCode, 201)
  t.match(sound.json(), { index: 1, type: 'audio', format: 'mp3', filename: 'output_audio.mp3', config: 'mic' })
  t.ok(Math.abs(sound.json().duration_seconds - fixtures.mp3.duration_seconds!) < 0.15)

  const video = multipartBody([{ name: 'config', value: 'camera' }, { name: 'file', value: webm, filename: 'clip.webm' }])
  const clip = await app.inject({ method: 'POST', url: `/api/runs/${run.run_id}/media`, headers: { 'content-type': video.contentType }, payload: video.body })
  t.equal(clip.statusCode, 201)
  t.match(clip.json(), { type: 'video', format: 'webm', width: fixtures.webm.width, height: fixtures.webm.height })

  t.same(await stored.read(run.run_id, 'output_audio.mp3'), mp3)
  const listed = (await app.inject({ url: `/api/runs/${run.run_id}` })).json()
  t.same(listed.outputs.map((o: any) => o.filename), ['output_image.png', 'output_audio.mp3', 'output_video.webm'])
})

t.test('bad uploads: 4xx JSON, run unchanged', async (t) => {
  const runsDir = await tempRunsDir(t)
  const app = await build(t, { RUNS_DIR: runsDir, MAX_UPLOAD_BYTES: String(32 * 1024) })
  const stored = storedView(runsDir)
  const run = await createRun(app)
  const before = (await stored.read(run.run_id, 'metadata.json')).toString()
  const png = await readFile(fixtures.png.file)
  const text = await readFile(fixtures.textAsPng.file)
  const cases: Array<[string, Parameters<typeof multipartBody>[0], number, string]> = [
    ['a text file named .png', [{ name: 'config', value: 'c' }, { name: 'file', value: text, filename: 'x.png', contentType: 'image/png' }], 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['a media_type that lies', [{ name: 'config', value: 'c' }, { name: 'media_type', value: 'video' }, { name: 'file', value: png, filename: 'x.png' }], 415, 'MEDIA_TYPE_MISMATCH'],
    ['an unknown media_type', [{ name: 'config', value: 'c' }, { name: 'media_type', value: 'hologram' }, { name: 'file', value: png, filename: 'x.png' }], 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['an oversize file', [{ name: 'config', value: 'c' }, { name: 'file', value: Buffer.concat([png, Buffer.alloc(40 * 1024)]), filename: 'x.png' }], 413, 'MEDIA_TOO_LARGE'],
    ['no file', [{ name: 'config', value: 'c' }], 400, 'INVALID_SOURCE'],
    ['no config', [{ name: 'file', value: png, filename: 'x.png' }], 400, 'INVALID_SOURCE'],
    ['a config that is a path', [{ name: 'config', value: '../../x' }, { name: 'file', value: png, filename: 'x.png' }], 400, 'INVALID_SOURCE'],
    ['a bad backend name', [{ name: 'config', value: 'c' }, { name: 'backend', value: '/etc' }, { name: 'file', value: png, filename: 'x.png' }], 400, 'INVALID_SOURCE'],
    ['the file in another field', [{ name: 'config', value: 'c' }, { name: 'image', value: png, filename: 'x.png' }], 400, 'INVALID_SOURCE']
  ]
  for (const [name, parts, status, code] of cases) {
    const form = multipartBody(parts)
    const res = await app.inject({ method: 'POST', url: `/api/runs/${run.run_id}/media`, headers: { 'content-type': form.contentType }, payload: form.body })
    t.equal(res.statusCode, status, name)
    t.match(res.json(), { statusCode: status, code }, name)
    t.same(await stored.list(run.run_id), ['input_text.txt', 'metadata.json'], `${name}: no file left`)
    t.equal((await stored.read(run.run_id, 'metadata.json')).toString(), before, `${name}: metadata unchanged`)
  }
  const twoFiles = multipartBody([{ name: 'config', value: 'c' }, { name: 'file', value: png, filename: 'a.png' }, { name: 'file', value: png, filename: 'b.png' }])
  const res = await app.inject({ method: 'POST', url: `/api/runs/${run.run_id}/media`, headers: { 'content-type': twoFiles.contentType }, payload: twoFiles.body })
  t.ok(res.statusCode === 400 || res.statusCode === 413, `two files refused (${res.statusCode})`)
  t.same(await stored.list(run.run_id), ['input_text.txt', 'metadata.json'])

  const broken: Array<[string, string, string | Buffer]> = [
    ['no boundary', 'multipart/form-data', '--x\r\n'],
    ['a body that is not multipart', 'multipart/form-data; boundary=abc', 'this is not a form at all'],
    ['a form that ends inside its headers', 'multipart/form-data; boundary=abc', '--abc\r\nContent-Disposition: form-data; name="config"\r\n']
  ]
  for (const [name, contentType, payload] of broken) {
    const res = await app.inject({ method: 'POST', url: `/api/runs/${run.run_id}/media`, headers: { 'content-type': contentType }, payload })
    t.equal(res.statusCode, 400, name)
    t.match(res.json(), { statusCode: 400, code: 'INVALID_SOURCE', message: /multipart/ }, name)
    t.same(await stored.list(run.run_id), ['input_text.txt', 'metadata.json'], `${name}: no file left`)
  }
  t.equal((await stored.read(run.run_id, 'metadata.json')).toString(), before)

  const form = multipartBody([{ name: 'config', value: 'c' }, { name: 'file', value: png, filename: 'x.png' }])
  const unknownRun = await app.inject({ method: 'POST', url: '/api/runs/0193f1e2-7c4a-7b9e-8d2f-4c1a2b3c4d5e/media', headers: { 'content-type': form.contentType }, payload: form.body })
  t.equal(unknownRun.statusCode, 404)
  t.match(unknownRun.json(), { code: 'RUN_NOT_FOUND' })
})

t.test('JSON media sources: url and data', async (t) => {
  const runsDir = await tempRunsDir(t)
  const app = await build(t, { RUNS_DIR: runsDir, FETCH_TIMEOUT_MS: '500' })
  const stored = storedView(runsDir)
  const run = await createRun(app)
  const jpeg = await readFile(fixtures.jpeg.file)
  const flac = await readFile(fixtures.flac.file)
  const server = await startMediaServer({ '/img': serveBytes(jpeg, 'image/png'), '/fail': serveStatus(500), '/slow': serveStall(jpeg) })
  t.teardown(server.close)

  const fromUrl = await app.inject({ method: 'POST', url: `/api/runs/${run.run_id}/media`, payload: { source: 'url', url: `${server.url}/img`, config: 'gpt_image' } })
  t.equal(fromUrl.statusCode, 201)
  t.match(fromUrl.json(), { filename: 'output_image.jpg', format: 'jpg', mime_type: 'image/jpeg', backend: 'url', source: { kind: 'url', url: `${server.url}/img` } })

  const fromData = await app.inject({ method: 'POST', url: `/api/runs/${run.run_id}/media`, payload: { source: 'data', data: `data:audio/wav;base64,${flac.toString('base64')}`, config: 'comfyui_audio', media_type: 'audio', backend: 'comfyui' } })
  t.equal(fromData.statusCode, 201)
  t.match(fromData.json(), { type: 'audio', format: 'flac', filename: 'output_audio.flac', backend: 'comfyui', source: { kind: 'data', declared_mime_type: 'audio/wav' } })
  const before = (await stored.read(run.run_id, 'metadata.json')).toString()
  const files = await stored.list(run.run_id)

  const failures: Array<[Record<string, unknown>, number, string]> = [
    [{ source: 'url', url: `${server.url}/fail`, config: 'c' }, 502, 'SOURCE_FAILED'],
    [{ source: 'url', url: `${server.url}/slow`, config: 'c' }, 504, 'SOURCE_TIMEOUT'],
    [{ source: 'url', url: 'http://10.0.0.5/secret.png', config: 'c' }, 400, 'FETCH_FORBIDDEN'],
    [{ source: 'data', data: 'data:image/png;base64', config: 'c' }, 400, 'INVALID_DATA'],
    [{ source: 'data', data: jpeg.toString('base64'), config: 'c', media_type: 'audio' }, 415, 'MEDIA_TYPE_MISMATCH'],
    [{ source: 'carrier-pigeon', config: 'c' }, 400, 'INVALID_REQUEST'],
    [{ source: 'url', url: `${server.url}/img` }, 400, 'INVALID_REQUEST']
  ]
  for (const [payload, status, code] of failures) {
    const res = await app.inject({ method: 'POST', url: `/api/runs/${run.run_id}/media`, payload })
    t.equal(res.statusCode, status, JSON.stringify(payload).slice(0, 80))
    t.match(res.json(), { statusCode: status, code })
    t.notMatch(res.body, /\/tmp|runstore-test|at .*\.ts/, 'no paths or stack traces in answers')
  }
  // The body schema describes JSON and forms; a body Fastify parses otherwise (text/plain) must not get past it unchecked.
  const asText = await app.inject({ method: 'POST', url: `/api/runs/${run.run_id}/media`, headers: { 'content-type': 'text/plain' }, payload: JSON.stringify({ source: 'data', data: jpeg.toString('base64'), config: 'c' }) })
  t.equal(asText.statusCode, 415, 'JSON sent as text/plain')
  t.match(asText.json(), { statusCode: 415, code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE' })
  t.equal((await stored.read(run.run_id, 'metadata.json')).toString(), before)
  t.same(await stored.list(run.run_id), files)
})

t.test('over a real socket a .. run id is refused before any path is built', async (t) => {
  const app = await build(t)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  for (const path of ['/api/runs/..', '/api/runs/%2e%2e', '/api/media/image/..', '/api/runs/../files/metadata.json']) {
    const answer = await new Promise<{ status: number, body: string }>((resolve, reject) => {
      // node:http sends the path as written; fetch() would resolve the dots first.
      httpRequest({ port, host: '127.0.0.1', path }, (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => { body += chunk })
        res.on('end', () => { resolve({ status: res.statusCode!, body }) })
      }).on('error', reject).end()
    })
    t.equal(answer.status, 400, path)
    t.match(JSON.parse(answer.body), { statusCode: 400, code: 'INVALID_RUN_ID' }, path)
  }
})

t.test('50 uploads at once into one run over HTTP: 50 outputs, one valid metadata.json', async (t) => {
  const runsDir = await tempRunsDir(t)
  const app = await build(t, { RUNS_DIR: runsDir })
  const stored = storedView(runsDir)
  const run = await createRun(app)
  const png = await readFile(fixtures.png.file)
  const answers = await Promise.all(Array.from({ length: 50 }, async (_, i) => {
    const form = multipartBody([{ name: 'config', value: `child_${i}` }, { name: 'file', value: png, filename: `drawing-${i}.png` }])
    return await app.inject({ method: 'POST', url: `/api/runs/${run.run_id}/media`, headers: { 'content-type': form.contentType }, payload: form.body })
  }))
  t.same(answers.map((a) => a.statusCode), Array(50).fill(201))
  const metadata = await storedMetadata(stored, run.run_id)
  t.equal(metadata.outputs.length, 50)
  t.same(metadata.outputs.map((o: any) => o.index), Array.from({ length: 50 }, (_, i) => i))
  t.same(new Set(metadata.outputs.map((o: any) => o.config)).size, 50, 'each upload is its own output')
  const files = (await stored.list(run.run_id)).filter((name) => name.startsWith('output_'))
  t.same(files.sort(), metadata.outputs.map((o: any) => o.filename).sort(), 'every listed file exists, nothing else')
  t.same((await stored.list(run.run_id)).filter((name) => name.startsWith('.')), [], 'no temp file left')
})

t.test('a truncated upload over a real socket leaves the run unchanged', async (t) => {
  const runsDir = await tempRunsDir(t)
  const app = await build(t, { RUNS_DIR: runsDir })
  const stored = storedView(runsDir)
  const run = await createRun(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const png = await readFile(fixtures.png.file)
  const form = multipartBody([{ name: 'config', value: 'c' }, { name: 'file', value: Buffer.concat([png, Buffer.alloc(200 * 1024, 7)]), filename: 'x.png' }])
  await new Promise<void>((resolve) => {
    const req = httpRequest({ port, host: '127.0.0.1', method: 'POST', path: `/api/runs/${run.run_id}/media`, headers: { 'content-type': form.contentType, 'content-length': form.body.length } })
    req.on('error', () => resolve())
    req.on('response', (res) => { res.resume(); res.on('end', resolve) })
    req.write(form.body.subarray(0, Math.floor(form.body.length / 2)), () => setTimeout(() => { req.destroy(); resolve() }, 100))
  })
  // The server notices the broken body on its own time; wait until the staged file is gone.
  for (let i = 0; i < 100; i++) {
    if ((await stored.list(run.run_id)).length === 2) break
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  t.same(await stored.list(run.run_id), ['input_text.txt', 'metadata.json'])
  t.same((await storedMetadata(stored, run.run_id)).outputs, [])
})
