import t from 'tap'
import pg from 'pg'
import { PostgresRunIndex } from '../../../../services/storage/index/postgres.js'
import type { RunSource } from '../../../../services/storage/index/run-index.js'
import { freshDatabase, killIndexSessions, query } from '../../../postgres.js'
import { tempRunsDir } from '../../../helper.js'
import { ids, indexSuite, newStorage, type IndexDriver, type Test } from './index-suite.js'

async function openPostgres (url: string, source: RunSource): Promise<{ index: PostgresRunIndex, journal: { journaled: number, skipped: Array<{ run_id: string, reason: string }> } }> {
  const index = await PostgresRunIndex.open({ url, poolSize: 4 })
  return { index, journal: await index.recoverJournal(source) }
}

// The database of a store: the same one for the same runsDir, as a file beside the runs would be.
const databases = new Map<string, string>()

const postgres: IndexDriver = {
  name: 'postgres',
  location: async (t, runsDir) => {
    let url = databases.get(runsDir)
    if (url === undefined) {
      url = await freshDatabase(t)
      databases.set(runsDir, url)
    }
    return url
  },
  open: openPostgres,
  crash: async (url) => { await killIndexSessions(url) },
  destroy: async (url) => { await query(url, 'DROP SCHEMA public CASCADE; CREATE SCHEMA public') },
  checkSize: async (t, _url, sizeBytes) => { t.ok(sizeBytes !== null && sizeBytes > 0, `its tables take ${sizeBytes} bytes`) },
  checkClosed: async (t, url) => { t.same(await query(url, 'SELECT id FROM run_index_sessions'), [], 'a clean close leaves no session behind') }
}

indexSuite(postgres)

async function opened (t: Test, url: string, runsDir: string): Promise<PostgresRunIndex> {
  const { index } = await openPostgres(url, newStorage(runsDir))
  t.teardown(async () => { await index.close() })
  return index
}

t.test('instances starting at once migrate once; a database migrated by a newer release is refused', async (t) => {
  const url = await freshDatabase(t)
  const runsDir = await tempRunsDir(t)
  const all = await Promise.all([1, 2, 3, 4].map(async () => await opened(t, url, runsDir)))
  t.same(await query(url, 'SELECT version, name FROM schema_migrations ORDER BY version'), [{ version: '001', name: '001_run_index.sql' }, { version: '002', name: '002_generation_queue.sql' }, { version: '003', name: '003_run_writers.sql' }])
  t.same(all.map((index) => index.description), all.map(() => `postgres:${new URL(url).host}${new URL(url).pathname}`))
  await query(url, "INSERT INTO schema_migrations (version, name) VALUES ('999', '999_future.sql')")
  await t.rejects(PostgresRunIndex.open({ url, poolSize: 1 }), /migrated by a newer runstore \(migrations 999\)/)
  await t.rejects(PostgresRunIndex.open({ url: url.replace(/\/[^/]+$/, '/no_such_database'), poolSize: 1 }), /no_such_database/)
})

t.test('a stop without close is seen by the next start, a close or a live instance is not', async (t) => {
  const url = await freshDatabase(t)
  const runsDir = await tempRunsDir(t)
  const first = await opened(t, url, runsDir)
  t.equal(first.lastStopWasClean, false, 'a new index: whatever the store holds is worth a sweep')
  await first.close()
  t.notOk(await first.isOpen())
  const second = await opened(t, url, runsDir)
  t.equal(second.lastStopWasClean, true)
  const third = await opened(t, url, runsDir)
  t.equal(third.lastStopWasClean, true, 'the second instance is alive, not stopped')
  // Both instances die: their connections end, which frees their locks.
  await query(url, 'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()')
  const fourth = await opened(t, url, runsDir)
  t.equal(fourth.lastStopWasClean, false)
  t.same((await query(url, 'SELECT count(*)::int AS n FROM run_index_sessions'))[0], { n: 1 }, 'the stopped sessions are gone, this one is listed')
  await t.resolves(second.close(), 'closing over a dead connection does not throw')
  const fifth = await opened(t, url, runsDir)
  t.equal(fifth.lastStopWasClean, true)
})

t.test('instances share the index: what one writes, another lists; an older update never overwrites a newer one', async (t) => {
  const url = await freshDatabase(t)
  const runsDir = await tempRunsDir(t)
  const storage = newStorage(runsDir)
  await storage.init()
  const one = await opened(t, url, runsDir)
  const two = await opened(t, url, runsDir)
  const run = await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'Eine Blume' })
  const later = await storage.setStatus(run.run_id, 'running')
  await Promise.all([one.upsert(later), two.upsert(run)])
  t.same((await two.list()).runs.map((r) => [r.run_id, r.status]), [[run.run_id, 'running']])
  t.match(await one.stats(), { runs: 1, byStatus: { running: 1 } })
  await two.remove(run.run_id)
  t.same(await ids(one), [])
})

t.test('text PostgreSQL cannot hold (NUL) is searched and filtered like any other', async (t) => {
  const url = await freshDatabase(t)
  const runsDir = await tempRunsDir(t)
  const storage = newStorage(runsDir)
  await storage.init()
  const index = await opened(t, url, runsDir)
  const withNul = await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'ab\0cd', user_id: 'A\0B' })
  const without = await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'abcd' })
  await index.upsert(withNul)
  await index.upsert(without)
  t.same((await index.list({ q: 'b\0c' })).runs.map((r) => [r.input_text, r.user_id]), [['ab\0cd', 'A\0B']], 'the entry keeps its NUL')
  t.same(await ids(index, { q: '\0' }), [withNul.run_id])
  t.same(await ids(index, { q: 'bc' }), [without.run_id])
  t.same(await ids(index, { user_id: 'A\0B' }), [withNul.run_id])
  t.same(await ids(index, { user_id: '\0', q: '\\%_' }), [])
})

t.test('runstore reindex with DATABASE_URL empties the PostgreSQL index and builds it again from the store', async (t) => {
  const { cli } = await import('../../../cli/run-cli.js')
  const runsDir = await tempRunsDir(t)
  const url = await freshDatabase(t)
  const storage = newStorage(runsDir)
  const made = []
  for (const text of ['Blume', 'Haus', 'Katze']) made.push((await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: text })).run_id)
  // An entry the store does not have: reindex must drop it.
  const stale = await PostgresRunIndex.open({ url, poolSize: 2 })
  await stale.upsert({ ...(await storage.getMetadata(made[0]!)), run_id: '01a00000-0000-7000-8000-000000000000' })
  await stale.close()

  const { code, stdout, stderr } = await cli(['--runs-dir', runsDir, 'reindex', '--json'], { DATABASE_URL: url })
  t.equal(code, 0, stderr)
  t.match(JSON.parse(stdout), { runs: 3, skipped: [] })
  t.match(JSON.parse(stdout).index, /^postgres:/, 'it names the database, not a file')
  const index = await PostgresRunIndex.open({ url, poolSize: 2 })
  t.teardown(async () => { await index.close() })
  t.notOk(index.building, 'built')
  t.same((await ids(index)).sort(), [...made].sort(), 'exactly the stored runs')
})

t.test('the runs a dead instance left running are named to the others, never those of a live one', async (t) => {
  const url = await freshDatabase(t)
  const runsDir = await tempRunsDir(t)
  const storage = newStorage(runsDir)
  await storage.init()
  // Left running before any instance now open started; a catch-up indexes it without a writer.
  const older = await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'alt', status: 'running' })
  const alive = await opened(t, url, runsDir)
  await alive.catchUp(storage)
  const other = await opened(t, url, runsDir)
  const dying = await PostgresRunIndex.open({ url, poolSize: 2 })
  t.teardown(async () => { await dying.close() })

  const ofAlive = await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'lebt', status: 'running' })
  await alive.upsert(ofAlive)
  // A write the live instance has begun and not yet indexed: its run must not be read or named.
  const begunByAlive = await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'halb', status: 'running' })
  await alive.begin(begunByAlive.run_id)
  const ofDying = await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'stirbt', status: 'running' })
  await dying.upsert(ofDying)
  // The dying instance wrote this run's metadata and died before indexing it.
  await dying.begin(ofDying.run_id)
  const begunByDying = await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'unterwegs' })
  await dying.begin(begunByDying.run_id)
  await storage.setStatus(begunByDying.run_id, 'running')
  const finished = await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'fertig', status: 'running' })
  await dying.upsert(await storage.setStatus(finished.run_id, 'completed'))

  t.same(await other.abandonedRuns(new Date(), storage), [older.run_id], 'while every instance lives: only the run no open instance started')
  await killIndexSessions(url, true)
  const named = await other.abandonedRuns(new Date(), storage)
  t.same(named.sort(), [older.run_id, ofDying.run_id, begunByDying.run_id].sort(), 'the dead instance\'s running runs, the one it had not indexed too')
  t.same(await ids(alive, { status: 'running' }).then((list) => list.sort()), [older.run_id, ofAlive.run_id, ofDying.run_id, begunByDying.run_id].sort(), 'its begun write was read into the index')
  t.same(await query(url, 'SELECT run_id FROM run_journal'), [{ run_id: begunByAlive.run_id }], 'the live instance\'s mark is left for it')
  t.same((await query<{ n: number }>(url, 'SELECT count(*)::int AS n FROM run_index_sessions'))[0], { n: 2 }, 'the dead session is gone')
  t.same((await alive.abandonedRuns(new Date(), storage)).sort(), named.sort(), 'asked again, from another instance: the same')
})

t.test('a write begun while the index write of the one before is still queued keeps its mark until its own', async (t) => {
  const url = await freshDatabase(t)
  const runsDir = await tempRunsDir(t)
  const storage = newStorage(runsDir)
  await storage.init()
  const index = await opened(t, url, runsDir)
  const run = await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'zweimal', status: 'running' })
  await index.begin(run.run_id)
  // As the store's change event calls it: queued, not awaited, while the next write of the run begins.
  const first = index.upsert(run)
  await index.begin(run.run_id)
  await first
  t.same(await query(url, 'SELECT run_id FROM run_journal'), [{ run_id: run.run_id }], 'the second write is still marked: a start or another instance reads it again if its process dies now')
  await index.upsert(await storage.setStatus(run.run_id, 'completed'))
  t.same(await query(url, 'SELECT run_id FROM run_journal'), [], 'its own index write clears it')
})

t.test('a live change PostgreSQL rolls back as a deadlock is run again, not left out of the index', async (t) => {
  const url = await freshDatabase(t)
  const runsDir = await tempRunsDir(t)
  const storage = newStorage(runsDir)
  await storage.init()
  const index = await opened(t, url, runsDir)
  const done = await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'fertig', status: 'running' })
  await index.upsert(await storage.setStatus(done.run_id, 'completed'))
  const run = await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'läuft', status: 'running' })
  await index.upsert(run)

  // Another instance's transaction holds the `completed` count and then wants the `running` one, which the
  // change below (running → completed) takes first: a cycle, and the change, waiting longest, is rolled back.
  const other = new pg.Client({ connectionString: url })
  await other.connect()
  t.teardown(async () => { await other.end() })
  const otherPid = (await other.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid
  await other.query('BEGIN')
  await other.query("UPDATE run_counts SET runs = runs WHERE status = 'completed'")
  const change = index.upsert(await storage.setStatus(run.run_id, 'completed'))
  while ((await query(url, "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> $1", [otherPid])).length === 0) await new Promise((resolve) => setTimeout(resolve, 20))
  const blocked = other.query("UPDATE run_counts SET runs = runs WHERE status = 'running'").then(() => 'went through', (err: { code?: string }) => err.code)
  const outcome = await Promise.race([change.then(() => 'change done'), blocked])
  await other.query(outcome === '40P01' ? 'ROLLBACK' : 'COMMIT').catch(() => {})
  await change
  t.same(await ids(index, { status: 'running' }), [], 'the change is in the index')
  t.same(await ids(index, { status: 'completed' }).then((list) => list.sort()), [done.run_id, run.run_id].sort())
})
