import t from 'tap'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fixtures } from '../fixtures/media.js'
import { build, destroyIndex, indexDriver, storedView, tempRunsDir } from '../helper.js'

type App = Awaited<ReturnType<typeof build>>

const ADMIN_TOKEN = 'a-long-admin-token-for-tests'

async function createRun (app: App, body: Record<string, unknown>): Promise<any> {
  // distinct creation times, so that from/to can tell the runs apart
  const start = Date.now()
  while (Date.now() === start) await new Promise((resolve) => setTimeout(resolve, 1))
  const res = await app.inject({ method: 'POST', url: '/api/runs', payload: { execution_mode: 'eco', ...body } })
  if (res.statusCode !== 201) throw new Error(`creating a run: ${res.statusCode} ${res.body}`)
  return res.json()
}

async function addMedia (app: App, runId: string, file: string, backend: string): Promise<any> {
  const res = await app.inject({ method: 'POST', url: `/api/runs/${runId}/media`, payload: { source: 'data', data: (await readFile(file)).toString('base64'), config: 'test', backend } })
  if (res.statusCode !== 201) throw new Error(`adding media: ${res.statusCode} ${res.body}`)
  return res.json()
}

async function list (app: App, query: string = ''): Promise<{ statusCode: number, body: any }> {
  const res = await app.inject({ url: `/api/runs${query}` })
  return { statusCode: res.statusCode, body: res.json() }
}

async function listIds (app: App, query: string): Promise<string[]> {
  const res = await list(app, query)
  if (res.statusCode !== 200) throw new Error(`GET /api/runs${query}: ${res.statusCode} ${JSON.stringify(res.body)}`)
  return res.body.runs.map((r: any) => r.run_id)
}

/** Four runs by two children in two pipelines, with different media and statuses. */
async function workshop (app: App): Promise<{ flower: any, cat: any, song: any, house: any }> {
  const flower = await createRun(app, { schema: 'dada', input_text: 'Eine Blume auf der Wiese', user_id: 'DOE_J' })
  await app.inject({ method: 'PATCH', url: `/api/runs/${flower.run_id}`, payload: { transformed_text: 'A surreal flower, 100% dada', status: 'running' } })
  await addMedia(app, flower.run_id, fixtures.png.file, 'comfyui')
  await app.inject({ method: 'PATCH', url: `/api/runs/${flower.run_id}`, payload: { status: 'completed' } })
  const cat = await createRun(app, { schema: 'bauhaus', input_text: 'Eine Katze mit "Hut"', user_id: 'ROE_R' })
  await addMedia(app, cat.run_id, fixtures.jpeg.file, 'openai')
  await app.inject({ method: 'PATCH', url: `/api/runs/${cat.run_id}`, payload: { status: 'failed' } })
  const song = await createRun(app, { schema: 'dada', input_text: 'Ein Lied über Vögel', user_id: 'ROE_R' })
  await addMedia(app, song.run_id, fixtures.wav.file, 'comfyui')
  const house = await createRun(app, { schema: 'bauhaus', input_text: 'Ein Haus_am See' })
  return { flower, cat, song, house }
}

t.test('GET /api/runs lists summaries newest first, with filters', async (t) => {
  const app = await build(t)
  const { flower, cat, song, house } = await workshop(app)

  const all = await list(app)
  t.equal(all.statusCode, 200)
  t.equal(all.body.next_cursor, null)
  t.same(all.body.runs.map((r: any) => r.run_id), [house.run_id, song.run_id, cat.run_id, flower.run_id])
  const metadata = (await app.inject({ url: `/api/runs/${flower.run_id}` })).json()
  t.same(all.body.runs[3], {
    run_id: flower.run_id,
    timestamp: metadata.timestamp,
    updated_at: metadata.updated_at,
    status: 'completed',
    schema: 'dada',
    execution_mode: 'eco',
    user_id: 'DOE_J',
    input_text: 'Eine Blume auf der Wiese',
    transformed_text: 'A surreal flower, 100% dada',
    output_count: 1,
    media_types: ['image'],
    backends: ['comfyui'],
    archive: null,
    thumbnail_url: `/api/media/image/${flower.run_id}/0`,
    url: `/api/runs/${flower.run_id}`
  })
  t.match(all.body.runs[0], { user_id: null, status: 'created', output_count: 0, media_types: [], thumbnail_url: null, transformed_text: null })
  t.match(all.body.runs[1], { media_types: ['audio'], thumbnail_url: null }, 'only images make thumbnails')

  const thumbnail = await app.inject({ url: all.body.runs[3].thumbnail_url })
  t.equal(thumbnail.statusCode, 200)
  t.equal(thumbnail.headers['content-type'], 'image/png')
  t.same(thumbnail.rawPayload, await readFile(fixtures.png.file))
  t.same((await app.inject({ url: all.body.runs[3].url })).json(), metadata)

  const cases: Array<[string, string[]]> = [
    ['?user_id=ROE_R', [song.run_id, cat.run_id]],
    ['?schema=bauhaus', [house.run_id, cat.run_id]],
    ['?status=completed', [flower.run_id]],
    ['?status=created', [house.run_id, song.run_id]],
    ['?media_type=image', [cat.run_id, flower.run_id]],
    ['?media_type=audio', [song.run_id]],
    ['?media_type=video', []],
    ['?backend=comfyui', [song.run_id, flower.run_id]],
    ['?backend=comfyui&media_type=image', [flower.run_id]],
    ['?user_id=ROE_R&schema=dada', [song.run_id]],
    ['?user_id=ROE_R&status=failed&media_type=image&backend=openai', [cat.run_id]],
    [`?from=${encodeURIComponent(cat.timestamp)}`, [house.run_id, song.run_id, cat.run_id]],
    [`?to=${encodeURIComponent(cat.timestamp)}`, [flower.run_id]],
    [`?from=${encodeURIComponent(cat.timestamp)}&to=${encodeURIComponent(house.timestamp)}`, [song.run_id, cat.run_id]],
    [`?from=${cat.timestamp.slice(0, 10)}`, [house.run_id, song.run_id, cat.run_id, flower.run_id]],
    ['?to=2000-01-01', []],
    ['?q=blume', [flower.run_id]],
    ['?q=SURREAL', [flower.run_id]],
    ['?q=%25', [flower.run_id]],
    ['?q=_', [house.run_id]],
    [`?q=${encodeURIComponent('"Hut"')}`, [cat.run_id]],
    [`?q=${encodeURIComponent('ÜBER')}`, [song.run_id]],
    ['?q=ein&schema=bauhaus', [house.run_id, cat.run_id]],
    ['?user_id=ROE_R&unknown=ignored', [song.run_id, cat.run_id]]
  ]
  for (const [query, expected] of cases) t.same(await listIds(app, query), expected, query)
})

t.test('paging with the cursor; bad queries are coded 400s', async (t) => {
  const app = await build(t)
  const { flower, cat, song, house } = await workshop(app)

  const first = await list(app, '?limit=2')
  t.same(first.body.runs.map((r: any) => r.run_id), [house.run_id, song.run_id])
  t.type(first.body.next_cursor, 'string')
  const newcomer = await createRun(app, { schema: 'dada', input_text: 'late' })
  const second = await list(app, `?limit=2&cursor=${first.body.next_cursor}`)
  t.same(second.body.runs.map((r: any) => r.run_id), [cat.run_id, flower.run_id], 'a run created meanwhile does not shift the pages')
  t.equal(second.body.next_cursor, null)
  t.same(await listIds(app, '?limit=1'), [newcomer.run_id])
  const filtered = await list(app, '?schema=dada&limit=1')
  t.same(await listIds(app, `?schema=dada&limit=5&cursor=${filtered.body.next_cursor}`), [song.run_id, flower.run_id])

  const bad: Array<[string, string]> = [
    ['?cursor=not-a-cursor', 'INVALID_CURSOR'],
    [`?cursor=${Buffer.from('../../etc/passwd').toString('base64url')}`, 'INVALID_CURSOR'],
    ['?media_type=hologram', 'INVALID_REQUEST'],
    ['?status=done', 'INVALID_REQUEST'],
    ['?limit=0', 'INVALID_REQUEST'],
    ['?limit=201', 'INVALID_REQUEST'],
    ['?limit=ten', 'INVALID_REQUEST'],
    ['?from=yesterday', 'INVALID_REQUEST'],
    ['?to=2025-11-04T10:00:00', 'INVALID_REQUEST'],
    ['?from=2025-11-04T23:59:60Z', 'INVALID_FILTER'],
    [`?q=${'x'.repeat(201)}`, 'INVALID_REQUEST'],
    ['?q=', 'INVALID_REQUEST'],
    ['?schema=../etc', 'INVALID_REQUEST']
  ]
  for (const [query, code] of bad) {
    const res = await list(app, query)
    t.equal(res.statusCode, 400, query)
    t.match(res.body, { statusCode: 400, error: 'Bad Request', code, message: String }, query)
  }
  t.equal((await list(app, '?limit=200')).body.runs.length, 5)
})

t.test('changes show in the listing at once: status, text, media, deletion', async (t) => {
  const runsDir = await tempRunsDir(t)
  const app = await build(t, { RUNS_DIR: runsDir, ADMIN_TOKEN, PUBLIC_BASE_URL: 'https://runstore.lab.example/' })
  const run = await createRun(app, { schema: 'dada', input_text: 'Eine Blume', user_id: 'DOE_J' })
  const other = await createRun(app, { schema: 'dada', input_text: 'Ein Baum' })
  t.same(await listIds(app, '?status=running'), [])

  await app.inject({ method: 'PATCH', url: `/api/runs/${run.run_id}`, payload: { status: 'running', transformed_text: 'A flower made of clocks' } })
  t.same(await listIds(app, '?status=running'), [run.run_id])
  t.same(await listIds(app, '?q=clocks'), [run.run_id])

  await addMedia(app, run.run_id, fixtures.wav.file, 'upload')
  t.same(await listIds(app, '?media_type=audio'), [run.run_id])
  t.equal((await list(app, '?media_type=audio')).body.runs[0].thumbnail_url, null)
  await addMedia(app, run.run_id, fixtures.png.file, 'comfyui')
  const listed = (await list(app, '?media_type=image')).body.runs
  t.match(listed, [{ run_id: run.run_id, output_count: 2, media_types: ['audio', 'image'], backends: ['upload', 'comfyui'] }])
  t.equal(listed[0].thumbnail_url, `https://runstore.lab.example/api/media/image/${run.run_id}/0`, 'absolute with PUBLIC_BASE_URL')
  t.equal(listed[0].url, `/api/runs/${run.run_id}`)

  const deleted = await app.inject({ method: 'DELETE', url: `/api/runs/${run.run_id}`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
  t.equal(deleted.statusCode, 204)
  t.same(await listIds(app, ''), [other.run_id])
  t.same(await listIds(app, '?q=blume'), [])
})

t.test('the index survives a restart, and is rebuilt when its file is gone', async (t) => {
  const runsDir = await tempRunsDir(t)
  const first = await build(t, { RUNS_DIR: runsDir })
  const { flower, cat, song, house } = await workshop(first)
  const before = (await list(first, '?limit=200')).body
  t.same(before.runs.map((r: any) => r.run_id), [house.run_id, song.run_id, cat.run_id, flower.run_id])
  await first.close()

  const second = await build(t, { RUNS_DIR: runsDir })
  t.match((await second.runstore.startup).index, { rebuilt: null, fullScan: false, added: 0, removed: 0 })
  t.same((await list(second, '?limit=200')).body, before)
  await second.close()

  await destroyIndex(runsDir)
  const third = await build(t, { RUNS_DIR: runsDir })
  t.match((await third.runstore.startup).index, { rebuilt: 'missing', added: 4 })
  t.same((await list(third, '?limit=200')).body, before)
  t.same(await listIds(third, '?media_type=image&backend=openai'), [cat.run_id])
  t.same(await listIds(third, '?user_id=ROE_R'), [song.run_id, cat.run_id])
  await third.close()
  if (indexDriver() !== 'sqlite') return

  await writeFile(join(runsDir, '.index.sqlite'), 'garbage, not SQLite')
  const stored = storedView(runsDir)
  await stored.remove(flower.run_id)
  await stored.write('0193f1e2-7c4a-7b9e-8d2f-4c1a2b3c4d5e', 'metadata.json', '{ half a docu')
  const fourth = await build(t, { RUNS_DIR: runsDir })
  t.match((await fourth.runstore.startup).index, { rebuilt: 'corrupt', added: 3, skipped: [{ run_id: '0193f1e2-7c4a-7b9e-8d2f-4c1a2b3c4d5e' }] })
  t.same(await listIds(fourth, ''), [house.run_id, song.run_id, cat.run_id])
})

t.test('RUN_INDEX_PATH puts the index elsewhere', { skip: indexDriver() !== 'sqlite' && 'RUN_INDEX_PATH is where the SQLite index is' }, async (t) => {
  const runsDir = await tempRunsDir(t)
  const elsewhere = await tempRunsDir(t)
  const app = await build(t, { RUNS_DIR: runsDir, RUN_INDEX_PATH: join(elsewhere, 'index', 'runs.sqlite') })
  const run = await createRun(app, { schema: 'dada', input_text: 'x' })
  t.equal(app.runIndex.description, `sqlite:${join(elsewhere, 'index', 'runs.sqlite')}`)
  t.same(await listIds(app, ''), [run.run_id])
  await app.close()
  t.ok((await readFile(join(elsewhere, 'index', 'runs.sqlite'))).length > 0)
})

t.test('/ready reports the index, and 503 when it does not answer', async (t) => {
  const app = await build(t, { ADMIN_TOKEN })
  const ready = await app.inject({ url: '/ready' })
  t.equal(ready.statusCode, 200)
  t.same(ready.json(), { status: 'ready', checks: { storage_writable: true, index_open: true, index_complete: true, startup_done: true }, index: { phase: 'ready', complete: true, indexed_runs: 0, stored_runs: null } })
  app.runIndex.close()
  const notReady = await app.inject({ url: '/ready' })
  t.equal(notReady.statusCode, 503)
  t.same(notReady.json(), { statusCode: 503, error: 'Service Unavailable', code: 'NOT_READY', message: 'the run index does not answer' })
  // writes after that still succeed; only the index misses them
  const run = await app.inject({ method: 'POST', url: '/api/runs', payload: { schema: 'dada', execution_mode: 'eco', input_text: 'x' } })
  t.equal(run.statusCode, 201)
  const deleted = await app.inject({ method: 'DELETE', url: `/api/runs/${run.json().run_id}`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
  t.equal(deleted.statusCode, 204)
})

t.test('GET /api/runs is in the OpenAPI document', async (t) => {
  const app = await build(t)
  const doc = (await app.inject({ url: '/openapi.json' })).json()
  const operation = doc.paths['/api/runs'].get
  t.same(operation.tags, ['runs'])
  t.ok(operation.summary)
  const parameters = operation.parameters.map((p: any) => p.name).sort()
  t.same(parameters, ['archived', 'backend', 'cursor', 'from', 'limit', 'media_type', 'order', 'q', 'schema', 'status', 'to', 'user_id'])
  const summary = operation.responses['200'].content['application/json'].schema.properties.runs.items
  t.same(Object.keys(summary.properties).sort(), ['archive', 'backends', 'execution_mode', 'input_text', 'media_types', 'output_count', 'run_id', 'schema', 'status', 'thumbnail_url', 'timestamp', 'transformed_text', 'updated_at', 'url', 'user_id'])
  t.ok(operation.responses['400'])
  const page = operation.responses['200'].content['application/json'].schema.properties
  t.same(Object.keys(page).sort(), ['index', 'next_cursor', 'runs', 'total', 'total_exact'])
})

t.test('order=asc pages oldest first; total counts the matches; a cursor only continues its own order', async (t) => {
  const app = await build(t)
  const made: string[] = []
  for (let i = 0; i < 7; i++) made.push((await createRun(app, { schema: i % 2 === 0 ? 'dada' : 'bauhaus', input_text: `Bild ${i}` })).run_id)
  const pages = async (query: string): Promise<string[][]> => {
    const seen: string[][] = []
    let cursor: string | null = null
    do {
      const page: any = (await list(app, `${query}&limit=3${cursor === null ? '' : `&cursor=${cursor}`}`)).body
      seen.push(page.runs.map((r: any) => r.run_id))
      cursor = page.next_cursor
    } while (cursor !== null)
    return seen
  }
  t.same(await pages('?order=asc'), [made.slice(0, 3), made.slice(3, 6), made.slice(6)])
  t.same(await pages('?order=desc'), [made.slice(4).reverse(), made.slice(1, 4).reverse(), made.slice(0, 1)])
  t.same(await pages('?order=asc&schema=dada&q=bild'), [[made[0], made[2], made[4]], [made[6]]])
  const first = (await list(app, '?limit=2')).body
  t.match(first, { total: 7, total_exact: true, index: { phase: 'ready', complete: true, indexed_runs: 7 } })
  t.match((await list(app, '?schema=bauhaus&limit=1')).body, { total: 3, total_exact: true })
  t.match((await list(app, '?q=bild 3')).body, { total: 1, total_exact: true })
  const wrongOrder = await list(app, `?order=asc&cursor=${first.next_cursor}`)
  t.equal(wrongOrder.statusCode, 400)
  t.equal(wrongOrder.body.code, 'INVALID_CURSOR')
  const badOrder = await list(app, '?order=newest')
  t.equal(badOrder.statusCode, 400)
})
