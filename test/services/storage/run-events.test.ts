import t from 'tap'
import { RunEvents, type RunEvent } from '../../../services/storage/run-events.js'

const deleted = (runId: string): RunEvent => ({ type: 'run.deleted', run_id: runId })

t.test('every subscriber hears every event, in the order they subscribed', async (t) => {
  const events = new RunEvents()
  const heard: string[] = []
  events.subscribe('first', (e) => { heard.push(`first ${e.run_id}`) })
  const unsubscribe = events.subscribe('second', (e) => { heard.push(`second ${e.run_id}`) })
  t.same(events.subscribers, ['first', 'second'])
  events.emit(deleted('a'))
  unsubscribe()
  events.emit(deleted('b'))
  t.same(heard, ['first a', 'second a', 'first b'], 'an unsubscribed listener hears nothing more')
  t.same(events.subscribers, ['first'])
})

t.test('a subscriber that throws or rejects is reported by name and stops no other', async (t) => {
  const reported: string[] = []
  const events = new RunEvents({ onListenerError: (err, event, listener) => { reported.push(`${listener}: ${(err as Error).message} (${event.type})`) } })
  const heard: string[] = []
  events.subscribe('throwing', () => { throw new Error('sync') })
  events.subscribe('rejecting', async () => { throw new Error('async') })
  events.subscribe('listening', (e) => { heard.push(e.run_id) })
  events.emit(deleted('a'))
  await new Promise((resolve) => setImmediate(resolve))
  t.same(heard, ['a'])
  t.same(reported, ['throwing: sync (run.deleted)', 'rejecting: async (run.deleted)'])
})

t.test('without a reporter, and with one that throws itself, emitting never throws', async (t) => {
  const silent = new RunEvents()
  silent.subscribe('throwing', () => { throw new Error('sync') })
  t.doesNotThrow(() => { silent.emit(deleted('a')) })
  const broken = new RunEvents({ onListenerError: () => { throw new Error('reporter down') } })
  broken.subscribe('throwing', () => { throw new Error('sync') })
  broken.subscribe('rejecting', async () => { throw new Error('async') })
  t.doesNotThrow(() => { broken.emit(deleted('a')) })
  await new Promise((resolve) => setImmediate(resolve))
})
