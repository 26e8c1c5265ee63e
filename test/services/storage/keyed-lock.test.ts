import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { KeyedLock } from '../../../services/storage/keyed-lock.js'

/** Work that logs when it starts and ends, and yields to timers in between. */
function recorder (events: string[]) {
  return (name: string, waitMs: number, result: unknown = name) => async () => {
    events.push(`start ${name}`)
    await sleep(waitMs)
    await sleep(0)
    events.push(`end ${name}`)
    return result
  }
}

t.test('work for one key runs one at a time, in call order', async (t) => {
  const lock = new KeyedLock()
  const events: string[] = []
  const work = recorder(events)
  // The first task waits longest: without the lock the others would finish first.
  const results = await Promise.all([
    lock.run('run-1', work('a', 30)),
    lock.run('run-1', work('b', 10)),
    lock.run('run-1', work('c', 0)),
    lock.run('run-1', work('d', 5))
  ])
  t.same(results, ['a', 'b', 'c', 'd'], 'each caller gets its own result')
  t.same(events, ['start a', 'end a', 'start b', 'end b', 'start c', 'end c', 'start d', 'end d'])
  t.equal(lock.size, 0, 'nothing remembered afterwards')
})

t.test('work queued while earlier work is running still waits its turn', async (t) => {
  const lock = new KeyedLock()
  const events: string[] = []
  const work = recorder(events)
  const first = lock.run('k', work('a', 10))
  await sleep(0) // a has started
  t.same(events, ['start a'])
  const second = lock.run('k', work('b', 0))
  t.equal(lock.size, 1, 'one key, however many tasks')
  await Promise.all([first, second])
  t.same(events, ['start a', 'end a', 'start b', 'end b'])
  t.equal(lock.size, 0)
})

t.test('different keys run at the same time', async (t) => {
  // a can only finish once b has run: if keys were serialised this would hang.
  t.setTimeout(10_000)
  const lock = new KeyedLock()
  const events: string[] = []
  let openGate!: () => void
  const gate = new Promise<void>((resolve) => { openGate = resolve })
  const running = [
    lock.run('run-1', async () => { events.push('start a'); await gate; events.push('end a') }),
    lock.run('run-2', async () => { events.push('start b'); await sleep(5); openGate(); events.push('end b') })
  ]
  t.equal(lock.size, 2)
  await Promise.all(running)
  t.same(events, ['start a', 'start b', 'end b', 'end a'])
  t.equal(lock.size, 0)
})

t.test('a failed task does not block the next one, and its caller gets the error', async (t) => {
  const lock = new KeyedLock()
  const events: string[] = []
  const work = recorder(events)
  const boom = new Error('disk full')
  const failing = lock.run('k', async () => {
    events.push('start bad')
    await sleep(5)
    events.push('end bad')
    throw boom
  })
  const next = lock.run('k', work('good', 0))
  // A task that throws before returning a promise is a rejection too.
  const syncThrow = lock.run('k', () => { events.push('sync'); throw new TypeError('not async') })
  const last = lock.run('k', work('last', 0))

  await t.rejects(failing, boom, 'the rejection reaches its own caller unchanged')
  t.equal(await next, 'good')
  await t.rejects(syncThrow, TypeError)
  t.equal(await last, 'last')
  t.same(events, ['start bad', 'end bad', 'start good', 'end good', 'sync', 'start last', 'end last'])
  t.equal(lock.size, 0)
})

t.test('a lone failing task leaves nothing behind either', async (t) => {
  const lock = new KeyedLock()
  await t.rejects(lock.run('k', async () => { throw new Error('x') }), { message: 'x' })
  t.equal(lock.size, 0)
  t.equal(await lock.run('k', async () => 42), 42, 'the key is usable again')
  t.equal(lock.size, 0)
})

t.test('a key released in the middle of a burst is picked up again', async (t) => {
  const lock = new KeyedLock()
  const events: string[] = []
  const work = recorder(events)
  await lock.run('k', work('a', 0))
  t.equal(lock.size, 0)
  const later = [lock.run('k', work('b', 10)), lock.run('k', work('c', 0))]
  t.equal(lock.size, 1)
  await Promise.all(later)
  t.same(events, ['start a', 'end a', 'start b', 'end b', 'start c', 'end c'])
  t.equal(lock.size, 0)
})
