import { randomInt } from 'node:crypto'
import pg from 'pg'
import { LOCK_SPACE } from '../postgres/lock-keys.js'
import { migrate } from '../postgres/migrate.js'
import type { SharedLine } from './queue.js'

// Tells every instance that a slot was freed or a count changed; the payload is the sender's instance id.
const CHANNEL = 'runstore_queue'
// A slot freed by a connection that died sends no notification: a waiting job looks again this often anyway.
const POLL_MS = 1000

export interface PostgresQueueOptions {
  url: string
  /** how often waiting jobs and the counts of other instances are looked at again without a notification, in ms */
  pollMs?: number
}

/**
 * The generation queues of one instance, shared through PostgreSQL with the
 * other instances on the same database. A job runs while its connection
 * holds the advisory lock of one of its backend's `concurrency` slots, so a
 * killed instance's slots free themselves when its connections die. The
 * waiting line is counted from queue_places, one row per instance and
 * backend, which counts while the instance's session connection holds its
 * own advisory lock.
 */
export class PostgresQueue {
  #instance = 0
  /** holds the instance lock, listens, and writes this instance's rows; none before start() */
  #session: pg.Client | undefined
  /** no live session: before start(), or the session died (the server restarted, or ended it) and the next look opens another under the same id */
  #lost = true
  #reconnecting: Promise<void> | undefined
  readonly #url: string
  readonly #pollMs: number
  /** the places this instance holds per backend, as last published: written again by a new session */
  readonly #places = new Map<string, number>()
  /** the connections jobs hold their slots with; each queue lets at most its concurrency ask, so that bounds them */
  readonly #pool: pg.Pool
  readonly #lines = new Map<string, PostgresLine>()
  readonly #wakers = new Set<() => void>()
  #timer: NodeJS.Timeout | undefined
  #writes: Promise<void> = Promise.resolve()
  #closed = false

  /** Connects nothing yet: the lines can be made first, start() joins the others. */
  constructor (options: PostgresQueueOptions) {
    this.#url = options.url
    this.#pollMs = options.pollMs ?? POLL_MS
    this.#pool = new pg.Pool({ connectionString: options.url, max: Number.MAX_SAFE_INTEGER })
    this.#pool.on('error', () => {})
    this.#pool.on('connect', (client) => { client.on('error', () => {}) })
  }

  /** Made and started at once. */
  static async open (options: PostgresQueueOptions): Promise<PostgresQueue> {
    const queue = new PostgresQueue(options)
    try {
      await queue.start()
    } catch (err) {
      await queue.close()
      throw err
    }
    return queue
  }

  /** this instance's id among the others (0 before start()) */
  get instance (): number {
    return this.#instance
  }

  /**
   * Migrates the database (as the run index does: start after it, so that
   * the index sees a new database as new), takes this instance's lock under
   * a free random id, and writes the places held so far.
   */
  async start (): Promise<void> {
    const migrations = new pg.Pool({ connectionString: this.#url, max: 1 })
    try {
      await migrate(migrations)
    } finally {
      await migrations.end()
    }
    const { session, instance } = await connectSession(this.#url)
    this.#instance = instance
    this.#use(session)
    this.#timer = setInterval(() => {
      this.#wake()
      void this.refresh()
    }, this.#pollMs)
    this.#timer.unref()
    await this.#writes
    await this.refresh()
  }

  /** The shared slots and line of `backend`; every instance must give it the same concurrency. */
  line (backend: string, concurrency: number): SharedLine {
    const line = new PostgresLine(this, backend, concurrency)
    this.#lines.set(backend, line)
    return line
  }

  /** Reads again what the other live instances hold, and removes the rows of dead ones. */
  async refresh (): Promise<void> {
    if (this.#closed) return
    try {
      if (this.#session === undefined) return
      if (this.#lost) await (this.#reconnecting ??= this.#reconnect().finally(() => { this.#reconnecting = undefined }))
      await this.#session.query(`DELETE FROM queue_places q WHERE NOT EXISTS (${HOLDER})`, [LOCK_SPACE.queueInstance])
      const rows = (await this.#session.query<{ backend: string, places: number }>(
        'SELECT backend, sum(places)::integer AS places FROM queue_places WHERE instance <> $1 GROUP BY backend', [this.instance])).rows
      const elsewhere = new Map(rows.map((row) => [row.backend, row.places]))
      for (const [backend, line] of this.#lines) line.elsewhere = elsewhere.get(backend) ?? 0
    } catch {
      // The database is away: the last counts stand until it answers again.
    }
  }

  /** Resolves when every count published so far has been written. */
  async flushed (): Promise<void> {
    await this.#writes
  }

  publish (backend: string, places: number): void {
    this.#places.set(backend, places)
    this.#writes = this.#writes.then(async () => {
      if (this.#closed || this.#lost) return
      await this.#session!.query(
        'INSERT INTO queue_places (instance, backend, places) VALUES ($1, $2, $3) ON CONFLICT (instance, backend) DO UPDATE SET places = excluded.places',
        [this.instance, backend, places])
      await this.#session!.query('SELECT pg_notify($1, $2)', [CHANNEL, String(this.instance)])
    }).catch(() => {
      // Not written: the others count this instance's last written places until the next change is.
    })
  }

  /** Waits for one of the `concurrency` slots of `backend` on a connection of its own; resolves with the function that frees it. */
  async acquire (backend: string, concurrency: number): Promise<() => Promise<void>> {
    const client = await this.#pool.connect()
    try {
      for (;;) {
        if (this.#closed) throw new Error('the shared queue is closed')
        const woken = new Promise<void>((resolve) => { this.#wakers.add(resolve) })
        for (let slot = 0; slot < concurrency; slot++) {
          const key = `${backend}:${slot}`
          const taken = (await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok', [LOCK_SPACE.queueSlot, key])).rows[0]!.ok
          if (taken) return async () => { await this.#free(client, key) }
        }
        await woken
      }
    } catch (err) {
      client.release(true)
      throw err
    }
  }

  async close (): Promise<void> {
    if (this.#closed) return
    clearInterval(this.#timer)
    await this.#writes
    this.#closed = true
    this.#wake()
    // Ending the session frees the instance lock, so its rows stop counting at once.
    await this.#session?.end().catch(() => {})
    await this.#pool.end()
  }

  async #free (client: pg.PoolClient, key: string): Promise<void> {
    try {
      await client.query('SELECT pg_advisory_unlock($1, hashtext($2))', [LOCK_SPACE.queueSlot, key])
      await client.query('SELECT pg_notify($1, $2)', [CHANNEL, String(this.instance)])
      client.release()
    } catch {
      // The connection died, and with it the lock: the others find the slot free when they look again.
      client.release(true)
    }
  }

  #use (session: pg.Client): void {
    this.#session = session
    this.#lost = false
    session.on('notification', (message) => {
      this.#wake()
      if (message.payload !== String(this.instance)) void this.refresh()
    })
    session.on('end', () => { if (session === this.#session) this.#lost = true })
    for (const [backend, places] of this.#places) this.publish(backend, places)
  }

  /** A new session under this instance's id, which writes again the places this instance holds. */
  async #reconnect (): Promise<void> {
    const { session } = await connectSession(this.#url, this.instance)
    if (this.#closed) {
      await session.end()
      return
    }
    this.#use(session)
    await this.#writes
  }

  #wake (): void {
    for (const wake of this.#wakers) wake()
    this.#wakers.clear()
  }
}

/**
 * A connection that holds the lock of `instance` (or of a free random id)
 * and listens on the channel. Its death fails its queries, caught where made.
 */
async function connectSession (url: string, instance?: number): Promise<{ session: pg.Client, instance: number }> {
  const session = new pg.Client({ connectionString: url })
  session.on('error', () => {})
  try {
    await session.connect()
    let id = instance ?? randomInt(1, 2 ** 31 - 1)
    while (!(await session.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [LOCK_SPACE.queueInstance, id])).rows[0]!.ok) {
      if (instance !== undefined) throw new Error(`the lock of queue instance ${instance} is still held`)
      id = randomInt(1, 2 ** 31 - 1)
    }
    await session.query(`LISTEN ${CHANNEL}`)
    return { session, instance: id }
  } catch (err) {
    await session.end().catch(() => {})
    throw err
  }
}

// The session of the row's instance still holds its lock: that instance is alive.
const HOLDER = "SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::integer::oid AND l.objid = q.instance::oid AND l.objsubid = 2"

class PostgresLine implements SharedLine {
  elsewhere = 0
  readonly #queue: PostgresQueue
  readonly #backend: string
  readonly #concurrency: number

  constructor (queue: PostgresQueue, backend: string, concurrency: number) {
    this.#queue = queue
    this.#backend = backend
    this.#concurrency = concurrency
  }

  async acquire (): Promise<() => Promise<void>> {
    return await this.#queue.acquire(this.#backend, this.#concurrency)
  }

  publish (places: number): void {
    this.#queue.publish(this.#backend, places)
  }
}
