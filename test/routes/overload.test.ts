import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { build } from '../helper.js'
import { parseExposition, sampleValue } from '../prometheus-text.js'

// A loop held for 1.5 s is far over a 300 ms limit in the sample that sees it; that state lasts one sample (300 ms).
const OVERLOAD = { OVERLOAD_SAMPLE_INTERVAL_MS: '300', OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '300', OVERLOAD_RETRY_AFTER_SECONDS: '7' }

/** Holds the event loop, as a request doing too much synchronous work would, then lets the sample due meanwhile run. */
async function holdLoop (ms: number): Promise<void> {
  const end = performance.now() + ms
  while (performance.now() < end) { /* busy */ }
  await sleep(1)
}

t.test('a saturated event loop: 503 SERVICE_OVERLOADED with Retry-After, while /health and /metrics answer; then back to normal', async (t) => {
  const app = await build(t, OVERLOAD)
  const run = (await app.inject({ method: 'POST', url: '/api/runs', payload: { schema: 'dada', execution_mode: 'eco', input_text: 'Blume' } })).json()
  t.equal((await app.inject({ url: `/api/runs/${run.run_id}` })).statusCode, 200, 'a calm service answers')

  await holdLoop(1500)
  const refused = await app.inject({ url: `/api/runs/${run.run_id}` })
  t.equal(refused.statusCode, 503)
  t.equal(refused.headers['retry-after'], '7')
  t.match(refused.headers['content-type'], /^application\/json/)
  t.same(refused.json(), { statusCode: 503, error: 'Service Unavailable', code: 'SERVICE_OVERLOADED', message: 'the service is overloaded; try again in a few seconds' })
  t.equal((await app.inject({ url: '/health' })).statusCode, 200, 'alive: a health check must not restart a busy service')
  const metrics = await app.inject({ url: '/metrics' })
  t.equal(metrics.statusCode, 200, 'metrics answer: they matter most now')
  t.equal(sampleValue(parseExposition(metrics.body), 'runstore_http_request_duration_seconds_count', { method: 'GET', route: '/api/runs/:run_id', status_code: '503' }), 1, 'and count the refusal')
  t.equal((await app.inject({ method: 'POST', url: '/api/schema/pipeline/execute', payload: { schema: 'dada', input_text: 'Blume' } })).statusCode, 503, 'still overloaded after those: no new work is taken')
  t.equal((await app.inject({ url: '/ready' })).statusCode, 503, 'not ready either')

  for (let i = 0; i < 100; i++) {
    if ((await app.inject({ url: `/api/runs/${run.run_id}` })).statusCode === 200) break
    await sleep(50)
  }
  t.equal((await app.inject({ url: `/api/runs/${run.run_id}` })).statusCode, 200, 'answers again once the loop is calm')

  const doc = (await app.inject({ url: '/openapi.json' })).json()
  t.match(doc.paths['/api/runs/{run_id}'].get.responses['503'].content['application/json'].schema.properties.code, { type: 'string' }, 'the OpenAPI document says any route may answer 503')
  t.notOk(doc.paths['/health'].get.responses['503'], 'except those that answer when overloaded')
})

t.test('both limits 0: no overload protection', async (t) => {
  const app = await build(t, { ...OVERLOAD, OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '0', OVERLOAD_MAX_EVENT_LOOP_UTILIZATION: '0' })
  await holdLoop(1500)
  t.equal((await app.inject({ url: '/api/runs' })).statusCode, 200)
  const doc = (await app.inject({ url: '/openapi.json' })).json()
  t.notOk(doc.paths['/api/runs/{run_id}'].get.responses['503'])
})
