import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { OverloadMonitor } from '../../../services/http/overload-monitor.js'

/** Holds the event loop, as a request doing too much synchronous work would. */
function holdLoop (ms: number): void {
  const end = performance.now() + ms
  while (performance.now() < end) { /* busy */ }
}

/** Lets the sample that was due while the loop was held run (an overdue timer fires before a new one). */
async function afterDueSample (): Promise<void> {
  await sleep(1)
}

async function eventually (check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (check()) return
    await sleep(50)
  }
  throw new Error(`never: ${what}`)
}

t.test('a loop held far past the limit is overloaded by event-loop delay, until a calm sample', async (t) => {
  const monitor = new OverloadMonitor({ maxEventLoopDelayMs: 50, maxEventLoopUtilization: 0, sampleIntervalMs: 100 })
  t.teardown(() => { monitor.stop() })
  monitor.start()
  t.equal(monitor.overload, null, 'nothing measured yet')
  holdLoop(1500)
  await afterDueSample()
  const overload = monitor.overload
  t.match(overload, { measure: 'event_loop_delay_ms', limit: 50 })
  t.ok(overload!.value > 50, `delay ${overload?.value.toFixed(0)} ms`)
  await eventually(() => monitor.overload === null, 'a calm sample clears it')
})

t.test('the delay is weighted by time: one long hold is not diluted by the many short turns of the rest of the sample', async (t) => {
  const monitor = new OverloadMonitor({ maxEventLoopDelayMs: 300, maxEventLoopUtilization: 0, sampleIntervalMs: 1000 })
  t.teardown(() => { monitor.stop() })
  monitor.start()
  await sleep(100) // about ten turns of the delay histogram's 10 ms timer
  holdLoop(800)
  await eventually(() => monitor.lastSample !== null, 'a sample')
  // A plain mean of the turns would be about (800 + 10 × 10) / 11 - 10 ≈ 70 ms.
  t.match(monitor.overload, { measure: 'event_loop_delay_ms', limit: 300 })
  t.ok(monitor.lastSample!.delayMs > 300, `weighted delay ${monitor.lastSample?.delayMs.toFixed(0)} ms`)
})

t.test('a loop busy for most of a sample is overloaded by utilization', async (t) => {
  const monitor = new OverloadMonitor({ maxEventLoopDelayMs: 0, maxEventLoopUtilization: 0.5, sampleIntervalMs: 100 })
  t.teardown(() => { monitor.stop() })
  monitor.start()
  holdLoop(600)
  await afterDueSample()
  t.match(monitor.overload, { measure: 'event_loop_utilization', limit: 0.5 })
  t.ok(monitor.overload!.value > 0.5 && monitor.overload!.value <= 1, `utilization ${monitor.overload?.value.toFixed(2)}`)
})

t.test('it measures from start() on, and stop() ends it', async (t) => {
  const monitor = new OverloadMonitor({ maxEventLoopDelayMs: 50, maxEventLoopUtilization: 0.5, sampleIntervalMs: 100 })
  t.teardown(() => { monitor.stop() })
  holdLoop(600) // a start that holds the loop, before the monitor starts
  monitor.start()
  await sleep(250)
  t.equal(monitor.overload, null, 'what happened before start is not counted')
  holdLoop(1500)
  await afterDueSample()
  t.not(monitor.overload, null)
  monitor.stop()
  t.equal(monitor.overload, null, 'stopped: nothing is refused')
  t.equal(monitor.lastSample, null)
  holdLoop(600)
  await sleep(250)
  t.equal(monitor.overload, null, 'and nothing is measured any more')
  monitor.start()
  monitor.start()
  t.equal(monitor.overload, null, 'started again (twice is once), from a clean sample')
})
