import { QueueFullError } from '../errors.js'

// Before the first generation on a backend has been timed.
const DEFAULT_GENERATION_SECONDS = 5
const MAX_RETRY_AFTER_SECONDS = 300
// Weight of the newest generation in the moving average of their durations.
const NEWEST_WEIGHT = 0.2

export interface GenerationQueueOptions {
  concurrency: number
  limit: number
  /** the clock generations are timed with, in milliseconds; performance.now() when not given */
  now?: (() => number) | undefined
}

/**
 * Lets at most `concurrency` generations run at once on one backend (a GPU
 * takes one or two) and at most `limit` wait. A place is reserved before a
 * run is created, so a request that would be refused is refused before
 * anything is written. It times the generations it runs, so a refusal can
 * say how long to wait.
 */
export class GenerationQueue {
  readonly name: string
  readonly #concurrency: number
  readonly #limit: number
  readonly #now: () => number
  #running = 0
  #reserved = 0
  readonly #waiting: Array<() => void> = []
  /** moving average of how long one generation took, once one has run */
  #generationSeconds: number | null = null

  constructor (name: string, options: GenerationQueueOptions) {
    this.name = name
    this.#concurrency = options.concurrency
    this.#limit = options.limit
    this.#now = options.now ?? (() => performance.now())
  }

  get running (): number {
    return this.#running
  }

  /** places taken but not running: waiting in line, or reserved by a run still in its text stages */
  get waiting (): number {
    return this.#reserved + this.#waiting.length
  }

  /** Seconds a refused client should wait: about one generation here (5 before the first has run), within 1..300. */
  get retryAfterSeconds (): number {
    const seconds = this.#generationSeconds ?? DEFAULT_GENERATION_SECONDS
    return Math.min(MAX_RETRY_AFTER_SECONDS, Math.max(1, Math.ceil(seconds)))
  }

  /** Takes a place or throws QUEUE_FULL (503, with retryAfterSeconds). Every reservation must be run or released. */
  reserve (): QueueReservation {
    if (this.#running + this.waiting >= this.#concurrency + this.#limit) throw new QueueFullError(this.name, this.retryAfterSeconds)
    this.#reserved++
    let settled = false
    const settle = (): boolean => {
      if (settled) return false
      settled = true
      this.#reserved--
      return true
    }
    return {
      run: async <T>(work: () => Promise<T>): Promise<T> => {
        if (!settle()) throw new Error('reservation already used')
        await this.#acquire()
        const start = this.#now()
        try {
          return await work()
        } finally {
          this.#observe((this.#now() - start) / 1000)
          this.#release()
        }
      },
      release: () => { settle() }
    }
  }

  async #acquire (): Promise<void> {
    if (this.#running < this.#concurrency) {
      this.#running++
      return
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve))
  }

  #observe (seconds: number): void {
    const previous = this.#generationSeconds
    this.#generationSeconds = previous === null ? seconds : previous * (1 - NEWEST_WEIGHT) + seconds * NEWEST_WEIGHT
  }

  #release (): void {
    const next = this.#waiting.shift()
    if (next !== undefined) next() // the place passes straight to the next in line
    else this.#running--
  }
}

export interface QueueReservation {
  run: <T>(work: () => Promise<T>) => Promise<T>
  release: () => void
}
