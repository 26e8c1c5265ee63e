import { monitorEventLoopDelay, performance, type EventLoopUtilization, type IntervalHistogram } from 'node:perf_hooks'

// The delay histogram's timer: each of its values is the time between two of its ticks, this period included.
const RESOLUTION_MS = 10

export interface OverloadLimits {
  /** event-loop delay of a sample (see EventLoopSample) above which the service is overloaded; 0: not checked */
  maxEventLoopDelayMs: number
  /** share of a sample the loop was busy (0..1) above which the service is overloaded; 0: not checked */
  maxEventLoopUtilization: number
  sampleIntervalMs: number
}

export interface EventLoopSample {
  /**
   * How long the loop was held at a stretch, weighted by time: the stretch a
   * request arriving at a random moment of the sample ran into.
   */
  delayMs: number
  /** share of the sample the loop was busy */
  utilization: number
}

/** Why the last sample found the service overloaded. */
export interface Overload {
  measure: 'event_loop_delay_ms' | 'event_loop_utilization'
  value: number
  limit: number
}

/**
 * Measures the event loop every sampleIntervalMs and says whether the last
 * sample was over a limit; a request only reads `overload`.
 *
 * Not @fastify/under-pressure, which was tried first: it measured the app's
 * own start (compiling the routes holds the loop while no request waits) and
 * refused the first requests, its delay histogram kept ticking after the app
 * closed, and its delay is the plain mean of the histogram, where a loop held
 * for a second at a time by synchronous work is diluted by the many short
 * turns in between: 32 clients running the builtin generator got no answer
 * within 10 s while that mean, over the whole flood, was 73 ms. Weighted by time, the same
 * flood measured 470 ms (p50 of 1 s samples) and a flood of 32 clients on a
 * cached image, all answered within milliseconds, 11 ms, though the loop was
 * busy 70% to 98% of the time, which is why utilization alone is no measure
 * of overload here.
 */
export class OverloadMonitor {
  readonly #limits: OverloadLimits
  #histogram: IntervalHistogram | null = null
  #timer: NodeJS.Timeout | null = null
  #utilization: EventLoopUtilization | null = null
  #due = 0
  #last: EventLoopSample | null = null
  #overload: Overload | null = null

  constructor (limits: OverloadLimits) {
    this.#limits = limits
  }

  /** null while the service keeps up, and before the first sample */
  get overload (): Overload | null {
    return this.#overload
  }

  /** what the last sample measured; null before the first */
  get lastSample (): EventLoopSample | null {
    return this.#last
  }

  start (): void {
    if (this.#timer !== null) return
    this.#histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS })
    this.#histogram.enable()
    this.#utilization = performance.eventLoopUtilization()
    this.#due = performance.now() + this.#limits.sampleIntervalMs
    this.#timer = setTimeout(() => { this.#sample() }, this.#limits.sampleIntervalMs).unref()
  }

  stop (): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#histogram?.disable()
    this.#timer = null
    this.#histogram = null
    this.#last = null
    this.#overload = null
  }

  #sample (): void {
    const histogram = this.#histogram!
    // The sampler's own lateness is one more stretch: one that ended just now may not be in the histogram yet.
    const lateness = Math.max(0, performance.now() - this.#due) + RESOLUTION_MS
    const count = histogram.count
    const mean = count === 0 ? 0 : histogram.mean / 1e6
    const deviation = count === 0 ? 0 : histogram.stddev / 1e6
    const total = count * mean + lateness
    const squares = count * (deviation ** 2 + mean ** 2) + lateness ** 2
    histogram.reset()
    const now = performance.eventLoopUtilization()
    this.#last = {
      delayMs: Math.max(0, squares / total - RESOLUTION_MS),
      utilization: performance.eventLoopUtilization(now, this.#utilization!).utilization
    }
    this.#utilization = now
    this.#overload = over('event_loop_delay_ms', this.#last.delayMs, this.#limits.maxEventLoopDelayMs) ??
      over('event_loop_utilization', this.#last.utilization, this.#limits.maxEventLoopUtilization)
    this.#due = performance.now() + this.#limits.sampleIntervalMs
    this.#timer!.refresh()
  }
}

function over (measure: Overload['measure'], value: number, limit: number): Overload | null {
  return limit > 0 && value > limit ? { measure, value, limit } : null
}
