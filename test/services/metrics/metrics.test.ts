import t from 'tap'
import { rm } from 'node:fs/promises'
import { createRunstore } from '../../../runstore.js'
import { tempRunsDir, testConfig } from '../../helper.js'
import { parseExposition, sampleValue } from '../../prometheus-text.js'

const deferred = () => {
  let resolve!: () => void
  const promise = new Promise<void>((r) => { resolve = r })
  return { promise, resolve }
}

t.test('queue depth and generations running are read from the queues when scraped', async (t) => {
  const runstore = await createRunstore(testConfig(await tempRunsDir(t)))
  t.teardown(async () => { await runstore.close() })
  const { metrics, backends } = runstore
  const read = async (name: string): Promise<number | undefined> => sampleValue(parseExposition(await metrics.exposition()), name, { backend: 'builtin' })

  const queue = backends.queue('builtin')
  const places = [queue.reserve(), queue.reserve()]
  t.equal(await read('runstore_generation_queue_depth'), 2, 'two places reserved by runs still in their text stages')
  const gate = deferred()
  const running = places[0]!.run(async () => { await gate.promise })
  t.equal(await read('runstore_generation_queue_depth'), 1)
  t.equal(await read('runstore_generations_running'), 1)
  gate.resolve()
  await running
  places[1]!.release()
  t.equal(await read('runstore_generation_queue_depth'), 0)
  t.equal(await read('runstore_generations_running'), 0)
  t.equal(await read('runstore_generation_duration_seconds_count'), 1)
})

t.test('a source that fails leaves its numbers out of the scrape (never stale) and is logged; close stops listening', async (t) => {
  const runsDir = await tempRunsDir(t)
  const warnings: unknown[] = []
  const logger = { info () {}, error () {}, warn (details: unknown) { warnings.push(details) } }
  const runstore = await createRunstore(testConfig(runsDir), { logger })
  t.teardown(async () => { await runstore.close() })
  const { metrics } = runstore
  const samples = async (name: string): Promise<number> => parseExposition(await metrics.exposition()).get(name)!.samples.length

  t.equal(await samples('runstore_storage_available_bytes'), 1)
  await rm(runsDir, { recursive: true })
  t.equal(await samples('runstore_storage_available_bytes'), 0, 'the runs folder is gone: no free space to tell')
  t.equal(await samples('runstore_storage_size_bytes'), 0)
  t.equal(await samples('runstore_index_runs'), 1, 'the rest is still there')
  t.match(warnings.filter((w) => (w as { metric?: string }).metric !== undefined), [{ metric: 'runstore_storage_available_bytes', err: { code: 'ENOENT' } }, { metric: 'runstore_storage_size_bytes' }])

  await runstore.index.close()
  t.equal(await samples('runstore_runs'), 0, 'a closed index: no runs by status')
  t.equal(await samples('runstore_index_size_bytes'), 0)

  t.ok(runstore.events.subscribers.includes('metrics'))
  await runstore.close()
  t.notOk(runstore.events.subscribers.includes('metrics'), 'closed: it hears of no runs')
  await runstore.backends.queue('builtin').reserve().run(async () => {})
  t.equal(sampleValue(parseExposition(await metrics.exposition()), 'runstore_generation_duration_seconds_count', { backend: 'builtin' }), 0, 'nor of generations')
})
