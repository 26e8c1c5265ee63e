import t from 'tap'
import { execFileSync } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import type { FastifyInstance } from 'fastify'
import { fixtures } from '../fixtures/media.js'
import { build, multipartBody, tempRunsDir } from '../helper.js'
import { LABEL_NAME, METRIC_NAME, parseExposition, sampleValue, type MetricFamily } from '../prometheus-text.js'

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i
const TOKEN = 'scrape-me-if-you-can-0123'

async function scrape (app: FastifyInstance): Promise<Map<string, MetricFamily>> {
  const res = await app.inject({ url: '/metrics' })
  if (res.statusCode !== 200) throw new Error(`GET /metrics answered ${res.statusCode}: ${res.body}`)
  return parseExposition(res.body)
}

const requests = (method: string, route: string, status: number) => ({ method, route, status_code: String(status) })

t.test('GET /metrics after requests, an upload and a pipeline run: Prometheus names, and counters that moved by what happened', async (t) => {
  const runsDir = await tempRunsDir(t)
  const app = await build(t, { RUNS_DIR: runsDir })
  const res = await app.inject({ url: '/metrics' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4; charset=utf-8$/, 'the content type Prometheus asks for')
  t.equal(res.headers['cache-control'], 'no-store')
  const before = parseExposition(res.body)

  const run = (await app.inject({ method: 'POST', url: '/api/runs', payload: { schema: 'dada', execution_mode: 'eco', input_text: 'Eine Blume' } })).json()
  const png = await readFile(fixtures.png.file)
  const form = multipartBody([{ name: 'config', value: 'upload' }, { name: 'file', value: png, filename: 'drawing.png' }])
  t.equal((await app.inject({ method: 'POST', url: `/api/runs/${run.run_id}/media`, payload: form.body, headers: { 'content-type': form.contentType } })).statusCode, 201)
  for (let i = 0; i < 3; i++) t.equal((await app.inject({ url: `/api/runs/${run.run_id}` })).statusCode, 200)
  for (let i = 0; i < 2; i++) t.equal((await app.inject({ url: '/api/runs/0193f1e2-7c4a-7b9e-8d2f-4c1a2b3c4d5e' })).statusCode, 404)
  t.equal((await app.inject({ url: `/no/such/route/${run.run_id}` })).statusCode, 404)
  const executed = await app.inject({ method: 'POST', url: '/api/schema/pipeline/execute', payload: { schema: 'dada', input_text: 'Eine Blume auf der Wiese' } })
  t.equal(executed.statusCode, 200)
  const generated = (await app.inject({ url: `/api/media/run/${executed.json().run_id}` })).json().outputs[0]
  const after = await scrape(app)

  t.test('names, types and help follow the Prometheus conventions', async (t) => {
    const broken: string[] = []
    for (const family of after.values()) {
      if (!METRIC_NAME.test(family.name)) broken.push(`${family.name} is no metric name`)
      if (family.help.length === 0) broken.push(`${family.name} has no HELP line`)
      if (family.type === 'untyped') broken.push(`${family.name} has no TYPE line`)
      for (const sample of family.samples) for (const label of Object.keys(sample.labels)) if (!LABEL_NAME.test(label)) broken.push(`${family.name}: label ${label}`)
      if (family.name.startsWith('process_') || family.name.startsWith('nodejs_')) continue // Node's own, under prom-client's usual names
      if (!family.name.startsWith('runstore_')) broken.push(`${family.name} lacks the runstore_ prefix`)
      if (family.name.endsWith('_total') !== (family.type === 'counter')) broken.push(`${family.name}: _total if and only if a counter`)
      if (/_(milliseconds|ms|microseconds|kilobytes|megabytes|kb|mb|minutes|hours)(_|$)/.test(family.name)) broken.push(`${family.name} is not in base units`)
    }
    t.same(broken, [], `${after.size} families, every one well named`)
    const ours = Object.fromEntries([...after.values()].filter((f) => f.name.startsWith('runstore_')).map((f) => [f.name, f.type]))
    t.same(ours, {
      runstore_http_request_duration_seconds: 'histogram',
      runstore_stored_outputs_total: 'counter',
      runstore_stored_output_bytes_total: 'counter',
      runstore_generation_duration_seconds: 'histogram',
      runstore_generation_queue_wait_seconds: 'histogram',
      runstore_generation_queue_depth: 'gauge',
      runstore_generations_running: 'gauge',
      runstore_runs: 'gauge',
      runstore_index_runs: 'gauge',
      runstore_index_complete: 'gauge',
      runstore_index_size_bytes: 'gauge',
      runstore_storage_available_bytes: 'gauge',
      runstore_storage_size_bytes: 'gauge'
    })
    t.equal(after.get('process_cpu_seconds_total')?.type, 'counter', 'and the process\'s own')
    t.equal(after.get('nodejs_eventloop_lag_seconds')?.type, 'gauge')
    t.notOk(Number.isNaN(sampleValue(before, 'nodejs_eventloop_lag_mean_seconds')), 'the loop is measured from the start, so even the first scrape has a mean')
  })

  t.test('requests by route pattern and status, never by raw URL', async (t) => {
    const count = (method: string, route: string, status: number): number | undefined => sampleValue(after, 'runstore_http_request_duration_seconds_count', requests(method, route, status))
    t.equal(count('POST', '/api/runs', 201), 1)
    t.equal(count('POST', '/api/runs/:run_id/media', 201), 1)
    t.equal(count('GET', '/api/runs/:run_id', 200), 3)
    t.equal(count('GET', '/api/runs/:run_id', 404), 2)
    t.equal(count('GET', 'unmatched', 404), 1, 'a URL no route matched has one label value')
    t.equal(count('POST', '/api/schema/pipeline/execute', 200), 1)
    t.equal(count('GET', '/metrics', 200), 1, 'the first scrape, counted once it was answered')
    const all = [...after.values()].flatMap((f) => f.samples)
    t.same(all.filter((s) => Object.values(s.labels).some((v) => UUID.test(v))), [], 'no label value holds a run id: a series per run would never end')

    const histogram = after.get('runstore_http_request_duration_seconds')!
    const series = new Map<string, number[]>()
    for (const s of histogram.samples.filter((s) => s.name.endsWith('_bucket'))) {
      const { le, ...labels } = s.labels
      const key = JSON.stringify(labels)
      series.set(key, [...(series.get(key) ?? []), s.value])
      if (le === '+Inf') t.equal(s.value, sampleValue(after, 'runstore_http_request_duration_seconds_count', labels), `+Inf bucket = count for ${key}`)
    }
    for (const [key, buckets] of series) t.same(buckets, [...buckets].sort((a, b) => a - b), `buckets of ${key} are cumulative`)
    t.ok(sampleValue(after, 'runstore_http_request_duration_seconds_sum', requests('POST', '/api/schema/pipeline/execute', 200))! > 0, 'the run took its time')
  })

  t.test('stored media: one more file and exactly its bytes per store', async (t) => {
    const moved = (name: string, labels: Record<string, string>): number => sampleValue(after, name, labels)! - sampleValue(before, name, labels)!
    t.equal(sampleValue(before, 'runstore_stored_outputs_total', { media_type: 'image' }), 0, 'every media type is there from the start')
    t.equal(moved('runstore_stored_outputs_total', { media_type: 'image' }), 2, 'the upload and the generated picture')
    t.equal(moved('runstore_stored_output_bytes_total', { media_type: 'image' }), png.length + generated.file_size_bytes, 'the uploaded file\'s size plus the generated one\'s')
    t.equal(moved('runstore_stored_outputs_total', { media_type: 'audio' }), 0)
    t.equal(moved('runstore_stored_output_bytes_total', { media_type: 'video' }), 0)
  })

  t.test('generations and queues per backend', async (t) => {
    t.equal(sampleValue(before, 'runstore_generation_duration_seconds_count', { backend: 'comfyui' }), 0, 'every backend is there before its first generation')
    t.equal(sampleValue(after, 'runstore_generation_duration_seconds_count', { backend: 'builtin' }), 1)
    t.ok(sampleValue(after, 'runstore_generation_duration_seconds_sum', { backend: 'builtin' })! > 0)
    t.equal(sampleValue(after, 'runstore_generation_duration_seconds_bucket', { backend: 'builtin', le: '+Inf' }), 1)
    t.equal(sampleValue(after, 'runstore_generation_queue_wait_seconds_count', { backend: 'builtin' }), 1)
    t.equal(sampleValue(after, 'runstore_generation_duration_seconds_count', { backend: 'openai' }), 0)
    t.equal(sampleValue(after, 'runstore_generation_queue_depth', { backend: 'builtin' }), 0, 'nothing waits once the run is done')
    t.equal(sampleValue(after, 'runstore_generations_running', { backend: 'comfyui' }), 0)
  })

  t.test('runs by status and the index, the disk of RUNS_DIR', async (t) => {
    t.same(Object.fromEntries(after.get('runstore_runs')!.samples.map((s) => [s.labels.status, s.value])),
      { created: 1, running: 0, completed: 1, failed: 0, blocked: 0 }, 'the run made by hand and the executed one')
    t.equal(sampleValue(after, 'runstore_index_runs'), 2)
    t.equal(sampleValue(before, 'runstore_index_runs'), 0)
    t.equal(sampleValue(after, 'runstore_index_complete'), 1)
    t.ok(sampleValue(after, 'runstore_index_size_bytes')! > 0)
    const [total, available] = execFileSync('df', ['-B1', '--output=size,avail', runsDir], { encoding: 'utf8' }).trim().split('\n')[1]!.trim().split(/\s+/).map(Number)
    t.equal(sampleValue(after, 'runstore_storage_size_bytes'), total, 'the size df tells of the volume')
    t.ok(Math.abs(sampleValue(after, 'runstore_storage_available_bytes')! - available!) < 256 * 1024 * 1024, 'and about its free bytes (others write meanwhile)')
  })

  t.test('each app has a registry of its own', async (t) => {
    const other = await build(t)
    const fresh = await scrape(other)
    t.same(fresh.get('runstore_http_request_duration_seconds')!.samples, [], 'no request of the other app')
    t.equal(sampleValue(fresh, 'runstore_stored_outputs_total', { media_type: 'image' }), 0)
    t.equal(sampleValue(fresh, 'runstore_index_runs'), 0)
  })
})

t.test('METRICS_TOKEN: unset, /metrics is open; set, it takes that bearer token and no other', async (t) => {
  const open = await build(t, { ADMIN_TOKEN: 'the-admin-token-0123456' })
  t.equal((await open.inject({ url: '/metrics' })).statusCode, 200)
  const openDoc = (await open.inject({ url: '/openapi.json' })).json()
  t.match(openDoc.paths['/metrics'].get, { tags: ['service'], summary: /Prometheus/ })
  t.notOk(openDoc.paths['/metrics'].get.security, 'no security when open')
  t.same(Object.keys(openDoc.paths['/metrics'].get.responses), ['200'])

  const closed = await build(t, { METRICS_TOKEN: TOKEN, ADMIN_TOKEN: 'the-admin-token-0123456' })
  for (const authorization of [undefined, 'Bearer wrong-token-000000000', `Basic ${TOKEN}`, `Bearer ${TOKEN}x`, 'Bearer the-admin-token-0123456']) {
    const res = await closed.inject({ url: '/metrics', headers: authorization === undefined ? {} : { authorization } })
    t.equal(res.statusCode, 401, `${authorization ?? 'no header'}: 401`)
    t.same(res.json(), { statusCode: 401, error: 'Unauthorized', code: 'METRICS_UNAUTHORIZED', message: 'this route needs Authorization: Bearer <METRICS_TOKEN>' })
    t.equal(res.headers['www-authenticate'], 'Bearer realm="runstore metrics"')
  }
  const res = await closed.inject({ url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(res.statusCode, 200)
  t.equal(sampleValue(parseExposition(res.body), 'runstore_http_request_duration_seconds_count', requests('GET', '/metrics', 401)), 5, 'refused scrapes are counted too')
  const doc = (await closed.inject({ url: '/openapi.json' })).json()
  t.same(doc.paths['/metrics'].get.security, [{ metricsToken: [] }])
  t.match(doc.components.securitySchemes.metricsToken, { type: 'http', scheme: 'bearer' })
  t.same(Object.keys(doc.paths['/metrics'].get.responses), ['200', '401'])
})
