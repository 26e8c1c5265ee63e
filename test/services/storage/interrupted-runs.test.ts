import t from 'tap'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { buildApp } from '../../../app.js'
import { createRunstore } from '../../../runstore.js'
import { fixtures } from '../../fixtures/media.js'
import { tempRunsDir, testConfig } from '../../helper.js'

t.test('a start ends the runs a stopped process left running: failed with RUN_INTERRUPTED, outputs kept; created and finished runs untouched', async (t) => {
  const runsDir = await tempRunsDir(t)
  const first = await createRunstore(testConfig(runsDir))
  const png = await readFile(fixtures.png.file)
  const withOutput = await first.storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'Blume', status: 'running' })
  await first.storage.addMedia(withOutput.run_id, png, { config: 'upload', backend: 'upload' })
  const bare = await first.storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'Wiese', status: 'running' })
  const driven = await first.storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'Baum' })
  const done = await first.storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'Haus', status: 'running' })
  await first.storage.setStatus(done.run_id, 'completed')
  const untouched = await Promise.all([driven, done].map(async (run) => await readFile(join(runsDir, run.run_id, 'metadata.json'))))
  await first.close()

  const second = await createRunstore(testConfig(runsDir))
  t.teardown(async () => { await second.close() })
  await second.startup // runs left running are ended in the start's background work
  t.same(second.interruptedRuns.sort(), [withOutput.run_id, bare.run_id].sort())

  const onDisk = JSON.parse(await readFile(join(runsDir, withOutput.run_id, 'metadata.json'), 'utf8'))
  t.equal(onDisk.status, 'failed', 'metadata.json says failed')
  t.match(onDisk.errors, [{ code: 'RUN_INTERRUPTED', message: /service stopped/, at: String }])
  t.equal(onDisk.outputs.length, 1, 'the output stored before the stop is kept')
  t.same(await readFile(join(runsDir, withOutput.run_id, onDisk.outputs[0].filename)), png)
  t.same(await Promise.all([driven, done].map(async (run) => await readFile(join(runsDir, run.run_id, 'metadata.json')))), untouched, 'created and completed runs: metadata.json byte for byte')
  t.same((await second.index.list({ status: 'running' })).runs, [], 'the index heard of it')
  t.same((await second.index.list({ status: 'failed' })).runs.map((r) => r.run_id).sort(), [withOutput.run_id, bare.run_id].sort())

  const third = await createRunstore(testConfig(runsDir))
  await third.startup
  t.same(third.interruptedRuns, [], 'a later start finds nothing more to end')
  await third.close()
})

t.test('clients polling an interrupted run stop waiting: MEDIA_NOT_FOUND instead of MEDIA_NOT_READY', async (t) => {
  const runsDir = await tempRunsDir(t)
  const first = await createRunstore(testConfig(runsDir))
  const run = await first.storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'Blume', status: 'running' })
  await first.close()

  const app = await buildApp(testConfig(runsDir), { logger: false })
  t.teardown(async () => { await app.close() })
  await app.runstore.startup
  const media = await app.inject({ url: `/api/media/image/${run.run_id}` })
  t.equal(media.statusCode, 404)
  t.equal(media.json().code, 'MEDIA_NOT_FOUND')
  const info = await app.inject({ url: `/api/media/info/${run.run_id}` })
  t.match(info.json(), { status: 'failed', type: null })
})

t.test('a run created at or after the start, or no longer running, is never ended by it', async (t) => {
  const runsDir = await tempRunsDir(t)
  const runstore = await createRunstore(testConfig(runsDir))
  t.teardown(async () => { await runstore.close() })
  const run = await runstore.storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'Blume', status: 'running' })
  const before = await readFile(join(runsDir, run.run_id, 'metadata.json'))
  const error = { code: 'RUN_INTERRUPTED', message: 'stopped' }
  t.equal(await runstore.storage.finishInterrupted(run.run_id, new Date(Date.parse(run.timestamp)), error), false, 'created at the start')
  t.same(await readFile(join(runsDir, run.run_id, 'metadata.json')), before, 'nothing written')
  await runstore.storage.setStatus(run.run_id, 'completed')
  t.equal(await runstore.storage.finishInterrupted(run.run_id, new Date(Date.now() + 60_000), error), false, 'completed meanwhile')
  t.equal((await runstore.storage.getMetadata(run.run_id)).status, 'completed')
})

t.test('instances sharing an index: a start never ends the runs a live instance works on; the runs of one that died are ended by the others', async (t) => {
  const { driverEnv } = await import('../../storage-drivers.js')
  const { freshDatabase, query } = await import('../../postgres.js')
  const { LOCK_SPACE } = await import('../../../services/postgres/lock-keys.js')
  const { env: s3 } = await driverEnv(t, 's3')
  const shared = { ...s3, DATABASE_URL: await freshDatabase(t), STOPPED_INSTANCE_CHECK_MS: '50' }
  const dying = await createRunstore(testConfig(await tempRunsDir(t), shared))
  t.teardown(async () => { await dying.close() })
  const png = await readFile(fixtures.png.file)
  const run = await dying.storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'Blume', status: 'running' })
  await dying.storage.addMedia(run.run_id, png, { config: 'upload', backend: 'upload' })

  const survivor = await createRunstore(testConfig(await tempRunsDir(t), shared))
  t.teardown(async () => { await survivor.close() })
  await survivor.startup
  t.same(survivor.interruptedRuns, [], 'the run of a live instance is left alone')
  t.equal((await survivor.storage.getMetadata(run.run_id)).status, 'running')

  // The dying instance's host goes: its database connections end (its process here stays, and writes nothing more).
  const pids = (await query<{ pid: number }>(shared.DATABASE_URL, "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = $1::integer::oid AND objid = 1",
    [LOCK_SPACE.indexSession])).map((row) => row.pid)
  t.equal(pids.length, 1, 'the dying instance holds its session')
  await query(shared.DATABASE_URL, 'SELECT pg_terminate_backend(pid) FROM unnest($1::integer[]) pid', [pids])
  while (survivor.interruptedRuns.length === 0) await new Promise((resolve) => setTimeout(resolve, 20))
  t.same(survivor.interruptedRuns, [run.run_id], 'ended by the survivor, without a restart')
  const metadata = await survivor.storage.getMetadata(run.run_id)
  t.equal(metadata.status, 'failed')
  t.match(metadata.errors, [{ code: 'RUN_INTERRUPTED' }])
  t.equal(metadata.outputs.length, 1, 'its output is kept')
  t.same((await survivor.index.list({ status: 'running' })).runs, [])
})
