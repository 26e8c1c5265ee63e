import t from 'tap'
import { GenerationQueue } from '../../../services/generation/queue.js'

const deferred = () => {
  let resolve!: () => void
  const promise = new Promise<void>((r) => { resolve = r })
  return { promise, resolve }
}

t.test('at most `concurrency` run at once; the rest wait in order', async (t) => {
  const queue = new GenerationQueue('gpu', { concurrency: 2, limit: 10 })
  const gates = Array.from({ length: 5 }, deferred)
  const started: number[] = []
  const runs = gates.map(async (gate, i) => await queue.reserve().run(async () => { started.push(i); await gate.promise; return i }))
  await new Promise((resolve) => setImmediate(resolve))
  t.same(started, [0, 1])
  t.equal(queue.running, 2)
  gates[1]!.resolve()
  await runs[1]
  await new Promise((resolve) => setImmediate(resolve))
  t.same(started, [0, 1, 2], 'a finished job lets the next in line start')
  for (const gate of gates) gate.resolve()
  t.same(await Promise.all(runs), [0, 1, 2, 3, 4])
  t.equal(queue.running, 0)
  t.equal(queue.waiting, 0)
})

t.test('over the limit a reservation is refused with QUEUE_FULL; released places come back', async (t) => {
  const queue = new GenerationQueue('comfyui', { concurrency: 1, limit: 1 })
  const first = queue.reserve()
  const second = queue.reserve()
  t.throws(() => queue.reserve(), { code: 'QUEUE_FULL', statusCode: 503, message: /comfyui/ })
  second.release()
  second.release()
  t.equal(queue.waiting, 1, 'releasing twice gives back one place')
  const third = queue.reserve()
  const gate = deferred()
  const running = first.run(async () => await gate.promise)
  await t.rejects(first.run(async () => {}), /already used/)
  t.throws(() => queue.reserve(), { code: 'QUEUE_FULL' }, 'one running and one reserved')
  third.release()
  gate.resolve()
  await running
  t.equal(queue.running, 0)
})

t.test('those waiting in line hold their places: the limit counts them until they run', async (t) => {
  const queue = new GenerationQueue('comfyui', { concurrency: 1, limit: 2 })
  const gates = Array.from({ length: 3 }, deferred)
  const runs = gates.map(async (gate) => { await queue.reserve().run(async () => await gate.promise) })
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(queue.running, 1)
  t.equal(queue.waiting, 2, 'two wait in line')
  t.throws(() => queue.reserve(), { code: 'QUEUE_FULL', statusCode: 503 }, 'one running and two waiting: full')
  gates[0]!.resolve()
  await runs[0]
  t.equal(queue.running, 1, 'the place passed to the next in line')
  t.equal(queue.waiting, 1)
  const fourth = queue.reserve()
  t.throws(() => queue.reserve(), { code: 'QUEUE_FULL' })
  fourth.release()
  for (const gate of gates) gate.resolve()
  await Promise.all(runs)
  t.equal(queue.running, 0)
  t.equal(queue.waiting, 0)
})

t.test('a failing job frees its place', async (t) => {
  const queue = new GenerationQueue('x', { concurrency: 1, limit: 0 })
  await t.rejects(queue.reserve().run(async () => { throw new Error('boom') }), /boom/)
  t.equal(await queue.reserve().run(async () => 'next'), 'next')
})

t.test('a full queue says how long to wait: about one generation, from the ones it timed', async (t) => {
  let clock = 0
  const queue = new GenerationQueue('gpu', { concurrency: 1, limit: 0, now: () => clock })
  // A generation that takes `ms` on the queue's clock.
  const timed = async (ms: number, fails = false): Promise<void> => {
    await queue.reserve().run(async () => { clock += ms; if (fails) throw new Error('boom') }).catch(() => {})
  }
  // The refusal of a request while one job (taking no time on the clock) holds the only place.
  const full = async (): Promise<unknown> => {
    const gate = deferred()
    const running = queue.reserve().run(async () => await gate.promise)
    let refused: unknown = null
    try { queue.reserve() } catch (err) { refused = err }
    gate.resolve()
    await running
    return refused
  }

  t.equal(queue.retryAfterSeconds, 5, 'nothing timed yet: a default guess')
  t.match(await full(), { code: 'QUEUE_FULL', statusCode: 503, retryAfterSeconds: 5 })
  t.equal(queue.retryAfterSeconds, 1, 'the job that held the place took no time on the clock: the minimum')
  await timed(40_000)
  t.equal(queue.retryAfterSeconds, 8, 'a moving average: 0.8 × 0 s + 0.2 × 40 s')
  await timed(40_000, true)
  t.equal(queue.retryAfterSeconds, 15, 'a failed generation took its time too: 0.8 × 8 s + 0.2 × 40 s = 14.4 s, rounded up')
  t.match(await full(), { code: 'QUEUE_FULL', retryAfterSeconds: 15 }, 'a refusal carries the estimate of its moment')
  t.equal(queue.retryAfterSeconds, 12, 'and the job that held the place counts when it ends: 0.8 × 14.4 s + 0.2 × 0 s')
  for (let i = 0; i < 40; i++) await timed(3_600_000)
  t.equal(queue.retryAfterSeconds, 300, 'never more than five minutes')
})

t.test('listeners hear of each generation: its wait for a place and its own time; one that throws changes nothing', async (t) => {
  let clock = 0
  const queue = new GenerationQueue('gpu', { concurrency: 1, limit: 5, now: () => clock })
  const heard: Array<{ waitSeconds: number, seconds: number }> = []
  const stop = queue.onGeneration((g) => { heard.push(g) })
  queue.onGeneration(() => { throw new Error('a broken listener') })
  const gate = deferred()
  const first = queue.reserve().run(async () => { await gate.promise; clock += 3000; return 'first' })
  const second = queue.reserve().run(async () => { clock += 500; return 'second' })
  await new Promise((resolve) => setImmediate(resolve))
  clock += 2000 // the first has held the place for 2 s before its work takes another 3 s
  gate.resolve()
  t.same(await Promise.all([first, second]), ['first', 'second'], 'the broken listener fails no generation')
  t.same(heard, [{ waitSeconds: 0, seconds: 5 }, { waitSeconds: 5, seconds: 0.5 }], 'the second waited while the first ran')
  t.equal(queue.running, 0, 'and keeps no place taken')
  stop()
  await queue.reserve().run(async () => {})
  t.equal(heard.length, 2, 'no more after unsubscribing')
})

t.test('a shared line counts the places held elsewhere, and a slot it cannot give fails the run and frees the place here', async (t) => {
  const published: number[] = []
  let fail = true
  const shared = {
    elsewhere: 1,
    publish: (places: number) => { published.push(places) },
    acquire: async () => {
      if (fail) throw new Error('the database is away')
      return async () => {}
    }
  }
  const queue = new GenerationQueue('gpu', { concurrency: 1, limit: 1, shared })
  const place = queue.reserve()
  t.ok(queue.full, 'one place here and one elsewhere fill one running and one waiting')
  t.throws(() => queue.reserve(), { code: 'QUEUE_FULL' })
  await t.rejects(place.run(async () => 'never'), /the database is away/)
  t.same([queue.running, queue.waiting], [0, 0])
  fail = false
  t.equal(await queue.reserve().run(async () => 'ran'), 'ran')
  t.same(published, [1, 0, 1, 0], 'every change of the places held here is told')
})
