import pg from 'pg'
import t, { type Test } from 'tap'
import { PostgresQueue } from '../../../services/generation/postgres-queue.js'
import { GenerationQueue } from '../../../services/generation/queue.js'
import { LOCK_SPACE } from '../../../services/postgres/lock-keys.js'
import { freshDatabase, query } from '../../postgres.js'

const deferred = () => {
  let resolve!: () => void
  const promise = new Promise<void>((r) => { resolve = r })
  return { promise, resolve }
}

/** One instance: its shared queue on the database, and its queue of `backend`. */
async function instance (t: Test, url: string, backend: string, concurrency: number, limit: number, pollMs = 50): Promise<{ shared: PostgresQueue, queue: GenerationQueue }> {
  const shared = await PostgresQueue.open({ url, pollMs })
  t.teardown(async () => { await shared.close() })
  return { shared, queue: new GenerationQueue(backend, { concurrency, limit, shared: shared.line(backend, concurrency) }) }
}

// An instance that looks again only when told to: once its connections are killed, it stays away as a dead one would.
const NEVER = 3_600_000

/** What `to` knows once `from` has written its counts. */
async function heard (from: PostgresQueue, to: PostgresQueue): Promise<void> {
  await from.flushed()
  await to.refresh()
}

/**
 * Kills the connections an instance holds its locks with, as the server does
 * when the instance's host dies (or only its session, as a restart of the
 * server would end it); resolves once they are gone.
 */
async function kill (url: string, instance: PostgresQueue, slots = true): Promise<number> {
  const pids = (await query<{ pid: number }>(url,
    `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
       AND ((classid = $1::integer::oid AND $4) OR (classid = $2::integer::oid AND objid = $3::integer::oid))`,
    [LOCK_SPACE.queueSlot, LOCK_SPACE.queueInstance, instance.instance, slots])).map((row) => row.pid)
  await query(url, 'SELECT pg_terminate_backend(pid) FROM unnest($1::integer[]) pid', [pids])
  // pg_terminate_backend only signals: the locks go when the backends have exited.
  while ((await query(url, 'SELECT 1 FROM pg_stat_activity WHERE pid = ANY($1::integer[])', [pids])).length > 0);
  return pids.length
}

t.test('two instances on one database never run more than `concurrency` jobs of a backend at once', async (t) => {
  const url = await freshDatabase(t)
  const a = await instance(t, url, 'comfyui', 2, 20)
  const b = await instance(t, url, 'comfyui', 2, 20)
  let running = 0
  let most = 0
  const job = (i: number) => async (): Promise<number> => {
    running++
    most = Math.max(most, running)
    // A query of its own (not a timer): the job lasts long enough for the others to try to start beside it.
    await query(url, 'SELECT pg_sleep(0.02)')
    running--
    return i
  }
  const results = await Promise.all(Array.from({ length: 12 }, async (_, i) => await (i % 2 === 0 ? a : b).queue.reserve().run(job(i))))
  t.same(results, Array.from({ length: 12 }, (_, i) => i), 'every job ran')
  t.equal(most, 2, 'never more than two at once, across both instances')
  t.same([a.queue.running, a.queue.waiting, b.queue.running, b.queue.waiting], [0, 0, 0, 0])
  t.same(await query(url, 'SELECT count(*)::integer AS held FROM pg_locks WHERE locktype = \'advisory\' AND classid = $1::integer::oid', [LOCK_SPACE.queueSlot]), [{ held: 0 }], 'every slot was freed')
})

t.test('the waiting line is one across instances: full on both when the places of both fill it', async (t) => {
  const url = await freshDatabase(t)
  const a = await instance(t, url, 'comfyui', 1, 2)
  const b = await instance(t, url, 'comfyui', 1, 2)
  const first = a.queue.reserve()
  const second = a.queue.reserve()
  await heard(a.shared, b.shared)
  t.notOk(b.queue.full, 'two of three places taken elsewhere')
  const third = b.queue.reserve()
  await heard(b.shared, a.shared)
  t.throws(() => a.queue.reserve(), { code: 'QUEUE_FULL', statusCode: 503, retryAfterSeconds: 5 })
  t.throws(() => b.queue.reserve(), { code: 'QUEUE_FULL', statusCode: 503, retryAfterSeconds: 5 })
  second.release()
  await heard(a.shared, b.shared)
  const fourth = b.queue.reserve()
  t.ok(b.queue.full, 'the place given back on one instance was taken on the other')
  await b.shared.close()
  await a.shared.refresh()
  t.notOk(a.queue.full, 'a closed instance holds no places')
  t.same(await query(url, 'SELECT instance FROM queue_places WHERE places > 0'), [{ instance: a.shared.instance }])
  for (const place of [first, third, fourth]) place.release()
})

t.test('an instance killed mid-job frees its slot and its places; another instance goes on', async (t) => {
  const url = await freshDatabase(t)
  const a = await instance(t, url, 'comfyui', 1, 1, NEVER)
  const b = await instance(t, url, 'comfyui', 1, 1)
  const started = deferred()
  const gate = deferred()
  const stuck = a.queue.reserve().run(async () => { started.resolve(); await gate.promise; return 'a' })
  await started.promise
  await heard(a.shared, b.shared)
  const waiting = b.queue.reserve().run(async () => 'b')
  await heard(b.shared, a.shared)
  t.ok(b.queue.full, 'one running on a, one waiting on b: the line is full')
  t.equal(await kill(url, a.shared), 2, 'the job\'s connection and the instance\'s session')
  t.equal(await waiting, 'b', 'b took the slot the dead connection held, without a notification')
  await b.shared.refresh()
  t.notOk(b.queue.full, 'the dead instance\'s places count no more')
  t.same(await query(url, 'SELECT instance FROM queue_places'), [{ instance: b.shared.instance }], 'and its rows are gone')
  gate.resolve()
  t.equal(await stuck, 'a', 'the job on the dead connection ends without an error when it frees its slot')
  a.queue.reserve().release()
  await a.shared.flushed()
  await a.shared.refresh()
})

t.test('a closed shared queue gives no slot; a database that cannot be reached is an error at open', async (t) => {
  const url = await freshDatabase(t)
  const a = await instance(t, url, 'gpu', 1, 0)
  const gate = deferred()
  const holding = a.queue.reserve().run(async () => await gate.promise)
  const other = await PostgresQueue.open({ url, pollMs: 50 })
  const refused = t.rejects(other.acquire('gpu', 1), /the shared queue is closed/)
  await other.close()
  await refused
  await other.close()
  await other.refresh()
  gate.resolve()
  await holding
  await t.rejects(PostgresQueue.open({ url: url.replace(/\/[^/]+$/, '/no_such_database') }), /no_such_database/)
})

t.test('an instance whose session died opens another under the same id and counts its places again', async (t) => {
  const url = await freshDatabase(t)
  const a = await instance(t, url, 'gpu', 1, 1, NEVER)
  const b = await instance(t, url, 'gpu', 1, 1)
  const places = [a.queue.reserve(), a.queue.reserve()]
  await heard(a.shared, b.shared)
  t.ok(b.queue.full)
  t.equal(await kill(url, a.shared, false), 1, 'only the session')
  await b.shared.refresh()
  t.notOk(b.queue.full, 'a dead session\'s places count no more')
  places.pop()!.release()
  await a.shared.flushed()
  await a.shared.refresh()
  await heard(a.shared, b.shared)
  t.notOk(b.queue.full, 'one place held by a again, one free')
  t.same(await query(url, 'SELECT instance, places FROM queue_places'), [{ instance: a.shared.instance, places: 1 }], 'written again by the new session, with what a holds now')
  b.queue.reserve()
  await heard(b.shared, a.shared)
  t.ok(a.queue.full, 'and a hears b again')

  await kill(url, a.shared, false)
  const squatter = new pg.Client({ connectionString: url })
  await squatter.connect()
  t.teardown(async () => { await squatter.end() })
  await squatter.query('SELECT pg_advisory_lock($1, $2)', [LOCK_SPACE.queueInstance, a.shared.instance])
  await a.shared.refresh()
  const holders = async (): Promise<number[]> => (await query<{ pid: number }>(url,
    'SELECT pid FROM pg_locks WHERE locktype = \'advisory\' AND granted AND classid = $1::integer::oid AND objid = $2::integer::oid', [LOCK_SPACE.queueInstance, a.shared.instance])).map((row) => row.pid)
  const squatterPid = (await squatter.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid
  t.same(await holders(), [squatterPid], 'while another connection holds its id, a does not come back')
  await squatter.query('SELECT pg_advisory_unlock($1, $2)', [LOCK_SPACE.queueInstance, a.shared.instance])
  await a.shared.refresh()
  t.equal((await holders()).filter((pid) => pid !== squatterPid).length, 1, 'once it is free, it does')
  t.same(await query(url, 'SELECT places FROM queue_places WHERE instance = $1', [a.shared.instance]), [{ places: 1 }])
  places.pop()!.release()
})
