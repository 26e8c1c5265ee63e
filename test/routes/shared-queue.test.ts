// Two instances over one store and one database (DATABASE_URL): one queue for both.
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { build, tempRunsDir } from '../helper.js'
import { GatedBackend, backendOutput, testConfigsDir } from '../pipeline-setup.js'
import { freshDatabase } from '../postgres.js'

const EXECUTE = '/api/schema/pipeline/execute'

async function instance (t: Test, env: Record<string, string>): Promise<{ app: FastifyInstance, gated: GatedBackend }> {
  const app = await build(t, env)
  const gated = new GatedBackend()
  app.backends.register(gated, { concurrency: app.config.BACKEND_CONCURRENCY })
  return { app, gated }
}

async function until (condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 5))
}

t.test('the GPU takes one job from two instances, and the waiting line is full on both', async (t) => {
  const env = {
    RUNS_DIR: await tempRunsDir(t),
    CONFIGS_DIR: await testConfigsDir(t, { outputs: [backendOutput('gated_image', 'gated')] }),
    DATABASE_URL: await freshDatabase(t),
    BACKEND_CONCURRENCY: '1',
    GENERATION_QUEUE_LIMIT: '1'
  }
  const a = await instance(t, env)
  t.equal(a.app.runstore.index.lastStopWasClean, false, 'the index opens before the queue joins: it sees the new database as new')
  const b = await instance(t, env)
  const execute = async (app: FastifyInstance, input: string) => await app.inject({ method: 'POST', url: EXECUTE, payload: { schema: 'dada', input_text: input, output_configs: ['gated_image'] } })

  const first = execute(a.app, 'a cat')
  await a.gated.started()
  t.notOk(a.app.backends.queue('gated').full, 'one running, a place left in line')
  const second = execute(b.app, 'a dog')
  // Each instance hears the other's places by NOTIFY (or the next look, within a second).
  await until(() => b.app.backends.queue('gated').waiting === 1 && a.app.backends.queue('gated').full && b.app.backends.queue('gated').full)
  for (const { app } of [a, b]) {
    const refused = await execute(app, 'a fish')
    t.equal(refused.statusCode, 503, 'one generating on a, one waiting on b: a third is refused on either')
    t.match(refused.json(), { code: 'QUEUE_FULL' })
    t.equal(refused.headers['retry-after'], '5', 'nothing timed yet: the default guess')
  }
  t.equal(b.gated.requests.length, 0, 'b waits while a generates')

  a.gated.open()
  t.equal((await first).statusCode, 200)
  await b.gated.started()
  t.equal(a.gated.requests.length + b.gated.requests.length, 2)
  b.gated.open()
  t.equal((await second).statusCode, 200, 'b took the slot a freed')
  const status = (await b.app.inject({ url: '/api/backends' })).json().backends.find((backend: { name: string }) => backend.name === 'gated')
  t.match(status.queue, { running: 0, waiting: 0 })
})
