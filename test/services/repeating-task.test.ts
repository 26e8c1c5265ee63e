import t from 'tap'
import type { Logger } from '../../runstore.js'
import { RepeatingTask } from '../../services/repeating-task.js'

const logger = (errors: string[]): Logger => ({ info () {}, warn () {}, error: ((_: unknown, message?: string) => { errors.push(message ?? '') }) as Logger['error'] })

t.test('runs after one interval, again after each run ends, never two at once; close waits for a run under way', async (t) => {
  const errors: string[] = []
  let calls = 0
  let running = 0
  let release!: () => void
  const second = new Promise<void>((resolve) => { release = resolve })
  let reached!: () => void
  const reachedSecond = new Promise<void>((resolve) => { reached = resolve })
  const schedule = new RepeatingTask({
    intervalMs: 1e-4, // a fraction of a millisecond
    failure: 'the work failed; the next interval tries again',
    logger: logger(errors),
    work: async () => {
      calls++
      running++
      t.equal(running, 1, 'never concurrent with itself')
      if (calls === 1) { running--; throw new Error('disk gone') }
      reached()
      await second
      running--
    }
  })
  // The task's timer does not keep a process alive; the test's own does.
  const alive = setInterval(() => {}, 1000)
  t.teardown(() => { clearInterval(alive) })
  schedule.start()
  await reachedSecond
  const now = schedule.runNow() // joins the run under way
  const closed = schedule.close()
  release()
  await Promise.all([now, closed])
  t.equal(calls, 2)
  t.same(errors, ['the work failed; the next interval tries again'])
})

t.test('an interval of 0 plans nothing', async (t) => {
  const schedule = new RepeatingTask({ intervalMs: 0, failure: 'never', logger: logger([]), work: async () => { t.fail('never runs') } })
  schedule.start()
  await schedule.close()
  t.pass()
})
