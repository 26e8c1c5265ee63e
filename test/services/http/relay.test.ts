import t from 'tap'
import { PassThrough, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { relayBody } from '../../../services/http/relay.js'

const sink = (chunks: Buffer[]): Writable => new Writable({ write (chunk: Buffer, _encoding, done) { chunks.push(chunk); done() } })

t.test('an upstream that breaks off before the reader starts is no uncaught exception; the reader gets the translated error', async (t) => {
  const upstream = new PassThrough()
  const body = relayBody(upstream, (err) => new Error(`translated: ${(err as Error).message}`))
  upstream.write('first bytes')
  upstream.destroy(new Error('socket hang up'))
  // The reader awaits something of its own first (a metadata read from a bucket).
  await sleep(20)
  await t.rejects(pipeline(body, sink([])), { message: 'translated: socket hang up' })
})

t.test('a whole body is relayed as it came; destroying the relay stops the upstream', async (t) => {
  const upstream = new PassThrough()
  const chunks: Buffer[] = []
  const done = pipeline(relayBody(upstream, (err) => err as Error), sink(chunks))
  upstream.end('Eine Blume')
  await done
  t.equal(Buffer.concat(chunks).toString(), 'Eine Blume')

  const other = new PassThrough()
  relayBody(other, (err) => err as Error).destroy()
  await sleep(0)
  t.ok(other.destroyed, 'the upstream is destroyed with it')
})
