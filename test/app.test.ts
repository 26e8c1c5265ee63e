import t from 'tap'
import SwaggerParser from '@apidevtools/swagger-parser'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ConfigSchema, loadConfig } from '../config.js'
import { build, tempRunsDir } from './helper.js'

const root = new URL('..', import.meta.url)

t.test('health, readiness', async (t) => {
  const runsDir = await tempRunsDir(t)
  const app = await build(t, { RUNS_DIR: join(runsDir, 'created-at-start') })
  t.same((await app.inject({ url: '/health' })).json(), { status: 'ok' })
  const ready = await app.inject({ url: '/ready' })
  t.equal(ready.statusCode, 200)
  t.same(ready.json(), { status: 'ready', checks: { storage_writable: true, index_open: true, index_complete: true, startup_done: true }, index: { phase: 'ready', complete: true, indexed_runs: 0, stored_runs: null } })

  await rm(join(runsDir, 'created-at-start'), { recursive: true })
  const notReady = await app.inject({ url: '/ready' })
  t.equal(notReady.statusCode, 503)
  t.match(notReady.json(), { statusCode: 503, code: 'NOT_READY' })
})

t.test('the OpenAPI document describes every route, tagged', async (t) => {
  const app = await build(t, { OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: String(ConfigSchema.properties.OVERLOAD_MAX_EVENT_LOOP_DELAY_MS.default) })
  const res = await app.inject({ url: '/openapi.json' })
  t.equal(res.statusCode, 200)
  const doc = res.json()
  // 3.1: the route schemas are JSON Schema (const, examples, type null), which 3.0 does not allow.
  t.equal(doc.openapi, '3.1.0')
  await t.resolves(SwaggerParser.validate(structuredClone(doc)), 'a valid OpenAPI document, so client generators take it')
  const expected = [
    ['post', '/api/runs'], ['get', '/api/runs/{run_id}'], ['patch', '/api/runs/{run_id}'], ['post', '/api/runs/{run_id}/media'],
    ['get', '/api/runs/{run_id}/files/{filename}'], ['get', '/api/media/image/{run_id}'], ['get', '/api/media/image/{run_id}/{index}'],
    ['get', '/api/media/audio/{run_id}'], ['get', '/api/media/video/{run_id}/{index}'], ['get', '/api/media/model3d/{run_id}'],
    ['get', '/api/media/info/{run_id}'], ['get', '/api/media/run/{run_id}'], ['get', '/health'], ['get', '/ready'], ['get', '/metrics']
  ]
  for (const [method, path] of expected) {
    const operation = doc.paths[path!]?.[method!]
    t.ok(operation, `${method} ${path} is documented`)
    t.ok(operation?.tags?.length > 0, `${method} ${path} is tagged`)
    t.ok(operation?.summary, `${method} ${path} is described`)
  }
  for (const [path, item] of Object.entries<any>(doc.paths)) {
    for (const [method, operation] of Object.entries<any>(item)) {
      t.ok(operation.tags?.length > 0, `${method} ${path} has a tag`)
    }
  }
  const image = doc.paths['/api/media/image/{run_id}'].get
  t.equal(image.responses['200'].content['image/*'].schema.format, 'binary', 'media answers are binary, of their kind of type')
  t.same(Object.keys(doc.paths['/api/media/model3d/{run_id}/{index}'].get.responses['206'].content), ['model/*'])
  t.same(Object.keys(image.responses).sort(), ['200', '206', '302', '304', '400', '404', '416', '422', '503'], '503: any route but /health and /metrics may be refused while the service is overloaded')
  t.equal(image.responses['416'].content['application/json'].schema.properties.code.type, 'string', 'a 416 is a JSON error like the others')
  t.ok(doc.paths['/api/media/video/{run_id}'].head, 'HEAD of the media routes is documented')
  t.notOk(doc.paths['/api/media/info/{run_id}'].head, 'and only there')
  t.same(Object.keys(doc.paths['/api/runs/{run_id}/files/{filename}'].get.responses).sort(), ['200', '206', '302', '304', '400', '404', '416', '503'])
  const upload = doc.paths['/api/runs/{run_id}/media'].post.requestBody.content
  t.ok(upload['multipart/form-data'], 'multipart upload described')
  t.ok(upload['application/json'], 'JSON sources described')

  const docs = await app.inject({ url: '/docs/' })
  t.equal(docs.statusCode, 200)
  t.match(docs.body, /swagger/i)
})

t.test('CORS for the workshop frontend on another origin', async (t) => {
  const app = await build(t, { CORS_ORIGINS: 'http://workshop.example, http://localhost:5173' })
  const res = await app.inject({ url: '/health', headers: { origin: 'http://workshop.example' } })
  t.equal(res.headers['access-control-allow-origin'], 'http://workshop.example')
  t.match(res.headers['access-control-expose-headers'], /Content-Range/)
  const other = await app.inject({ url: '/health', headers: { origin: 'http://evil.example' } })
  t.notOk(other.headers['access-control-allow-origin'])
  const preflight = await app.inject({ method: 'OPTIONS', url: '/api/runs', headers: { origin: 'http://localhost:5173', 'access-control-request-method': 'POST' } })
  t.equal(preflight.statusCode, 204)

  const closed = await build(t)
  t.notOk((await closed.inject({ url: '/health', headers: { origin: 'http://workshop.example' } })).headers['access-control-allow-origin'], 'no CORS unless configured')
})

t.test('configuration: defaults, validation, and .env.example in step with the code', async (t) => {
  const defaults = loadConfig({})
  t.match(defaults, { PORT: 3000, HOST: '127.0.0.1', RUNS_DIR: './runs', LOG_LEVEL: 'info', MAX_UPLOAD_BYTES: 100 * 1024 * 1024 })
  t.equal(defaults.PUBLIC_BASE_URL, undefined)
  t.equal(loadConfig({ PORT: '8080' }).PORT, 8080)
  t.throws(() => loadConfig({ PORT: 'eighty' }), /PORT/)
  t.throws(() => loadConfig({ LOG_LEVEL: 'loud' }), /LOG_LEVEL/)
  t.throws(() => loadConfig({ MAX_UPLOAD_BYTES: '0' }), /MAX_UPLOAD_BYTES/)
  t.throws(() => loadConfig({ COMFYUI_URL: 'gpu-host:8188' }), /COMFYUI_URL/, 'a URL without its scheme is refused at start')
  t.throws(() => loadConfig({ OPENAI_BASE_URL: 'api.openai.com' }), /OPENAI_BASE_URL/)
  const blank = loadConfig({ COMFYUI_URL: '', OPENAI_API_KEY: ' ', PORT: '', LLM_ECO_BASE_URL: '' })
  t.match(blank, { PORT: 3000 }, 'an empty line of .env means the default')
  t.equal(blank.COMFYUI_URL, undefined, 'and an optional setting left empty is not set')
  t.equal(blank.OPENAI_API_KEY, undefined)
  t.equal(blank.LLM_ECO_BASE_URL, undefined)

  const example = await readFile(new URL('.env.example', root), 'utf8')
  const documented = [...example.matchAll(/^#?\s*([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1])
  t.same(documented.sort(), Object.keys(ConfigSchema.properties).sort(), '.env.example lists exactly the settings')
  const readme = await readFile(new URL('README.md', root), 'utf8')
  for (const key of Object.keys(ConfigSchema.properties)) t.match(readme, key, `README mentions ${key}`)
})

t.test('the service starts with every setting of .env.example uncommented and left empty', async (t) => {
  const example = await readFile(new URL('.env.example', root), 'utf8')
  const empty = Object.fromEntries([...example.matchAll(/^#?\s*([A-Z][A-Z0-9_]+)=/gm)].map((m) => [m[1]!, '']))
  const app = await build(t, { ...empty, RUNS_DIR: await tempRunsDir(t), RUN_INDEX_PATH: '', CONFIGS_DIR: '', LOG_LEVEL: 'silent' })
  const backends = (await app.inject({ url: '/api/backends' })).json().backends
  t.match(backends.find((b: any) => b.name === 'comfyui'), { available: false, unavailable_reason: /COMFYUI_URL/ })
  t.equal((await app.inject({ method: 'POST', url: '/api/schema/pipeline/execute', payload: { schema: 'dada', input_text: 'Eine Blume' } })).statusCode, 200)
})

t.test('X-Request-Id: a caller\'s plain token is kept, anything else replaced; every answer carries one', async (t) => {
  const app = await build(t)
  const kept = await app.inject({ url: '/health', headers: { 'x-request-id': 'frontend-42.a:b_c' } })
  t.equal(kept.headers['x-request-id'], 'frontend-42.a:b_c')
  for (const junk of ['x'.repeat(129), 'a b', 'evil\u00e9', '']) {
    const res = await app.inject({ url: '/health', headers: { 'x-request-id': junk } })
    t.match(res.headers['x-request-id'], /^[0-9a-f-]{36}$/, `${JSON.stringify(junk.slice(0, 10))} is replaced by a fresh id`)
  }
  const ids = new Set<string>()
  for (const url of ['/health', '/api/nothing', '/api/runs/not-a-uuid']) {
    const res = await app.inject({ url })
    t.match(res.headers['x-request-id'], /^[0-9a-f-]{36}$/, `${url} (${res.statusCode}) names its request`)
    ids.add(String(res.headers['x-request-id']))
  }
  t.equal(ids.size, 3, 'a new id per request')
})

t.test('a storage root that cannot be created stops the start with an error', async (t) => {
  const runsDir = await tempRunsDir(t)
  await writeFile(join(runsDir, 'a-file'), 'not a folder')
  await t.rejects(build(t, { RUNS_DIR: join(runsDir, 'a-file', 'runs') }), { code: 'ENOTDIR' })
})
