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
