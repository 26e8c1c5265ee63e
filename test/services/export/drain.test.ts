import t from 'tap'
import { PassThrough } from 'node:stream'
import { drained } from '../../../services/export/drain.js'

t.test('a producer waits while the stream is full and goes on when it drains', async (t) => {
  const stream = new PassThrough({ highWaterMark: 4 })
  await drained(stream)
  stream.write(Buffer.alloc(8))
  let done = false
  const waiting = drained(stream).then(() => { done = true })
  await new Promise((resolve) => setImmediate(resolve))
  t.notOk(done, 'waits while nobody reads')
  stream.read()
  await waiting
  t.ok(done)
})

t.test('a producer stops when the stream closes before it drains, and when it was closed already', async (t) => {
  const stream = new PassThrough({ highWaterMark: 4 })
  stream.write(Buffer.alloc(8))
  const waiting = drained(stream)
  stream.destroy()
  await t.rejects(waiting, /closed/)
  await t.rejects(drained(stream), /closed/)
})
