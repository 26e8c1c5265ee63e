import { QueueFullError } from '../errors.js'

// Before the first generation on a backend has been timed.
const DEFAULT_GENERATION_SECONDS = 5
const MAX_RETRY_AFTER_SECONDS = 300
// Weight of the newest generation in the moving average of their durations.
const NEWEST_WEIGHT = 0.2

/** Where the queues of all instances meet (PostgresQueue): one shared line per backend. */
export interface SharedQueues {
  line: (backend: string, concurrency: number) => SharedLine
}

export interface GenerationQueueOptions {
  concurrency: number
  limit: number
  /** the clock generations are timed with, in milliseconds; performance.now() when not given */
  now?: (() => number) | undefined
  /** the slots and the waiting line shared with other instances (PostgreSQL); this process alone when not given */
  shared?: SharedLine | undefined
}

/**
 * What other instances of the same backend hold. The concurrency is kept
 * strictly by the slots; the waiting line is counted from what each instance
 * last told the others, so two instances refusing at the same instant may
 * let the line grow by a place or two past the limit, never the GPU's load.
 */
export interface SharedLine {
  /** waits for one of the backend's slots across all instances; resolves with the function that frees it */
  acquire: () => Promise<() => Promise<void>>
  /** places (running or waiting) the other live instances hold, as last heard */
  readonly elsewhere: number
  /** tells the other instances how many places this one holds now */
  publish: (places: number) => void
}

/** One generation that ran here: how long it waited for a place and how long it took, in seconds. */
export interface TimedGeneration {
  waitSeconds: number
  seconds: number
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
  /** places taken here: running, or waiting for a slot shared with other instances */
  #running = 0
  #reserved = 0
  /** holding a place here, waiting for a slot shared with other instances */
  #waitingForSlot = 0
  readonly #shared: SharedLine | undefined
  readonly #waiting: Array<() => void> = []
  /** moving average of how long one generation took, once one has run */
  #generationSeconds: number | null = null
  readonly #listeners = new Set<(generation: TimedGeneration) => void>()

  constructor (name: string, options: GenerationQueueOptions) {
    this.name = name
    this.#concurrency = options.concurrency
    this.#limit = options.limit
    this.#now = options.now ?? (() => performance.now())
    this.#shared = options.shared
  }

  get running (): number {
    return this.#running - this.#waitingForSlot
  }

  /** places taken but not running: waiting in line, or reserved by a run still in its text stages */
  get waiting (): number {
    return this.#reserved + this.#waiting.length + this.#waitingForSlot
  }

  /** true when reserve() would throw QUEUE_FULL now */
  get full (): boolean {
    return this.running + this.waiting + (this.#shared?.elsewhere ?? 0) >= this.#concurrency + this.#limit
  }

  /** Seconds a refused client should wait: about one generation here (5 before the first has run), within 1..300. */
  get retryAfterSeconds (): number {
    const seconds = this.#generationSeconds ?? DEFAULT_GENERATION_SECONDS
    return Math.min(MAX_RETRY_AFTER_SECONDS, Math.max(1, Math.ceil(seconds)))
  }

  /** Tells `listener` of every generation from now on (the timing Retry-After is estimated from); returns the unsubscribe function. */
  onGeneration (listener: (generation: TimedGeneration) => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  /** Takes a place or throws QUEUE_FULL (503, with retryAfterSeconds). Every reservation must be run or released. */
  reserve (): QueueReservation {
    if (this.full) throw new QueueFullError(this.name, this.retryAfterSeconds)
    this.#reserved++
    this.#publish()
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
        const queued = this.#now()
        await this.#acquire()
        let freeSlot: () => Promise<void>
        try {
          freeSlot = await this.#acquireShared()
        } catch (err) {
          this.#release()
          throw err
        }
        const start = this.#now()
        try {
          return await work()
        } finally {
          this.#observe({ waitSeconds: (start - queued) / 1000, seconds: (this.#now() - start) / 1000 })
          await freeSlot()
          this.#release()
        }
      },
      release: () => { if (settle()) this.#publish() }
    }
  }

  async #acquire (): Promise<void> {
    if (this.#running < this.#concurrency) {
      this.#running++
      return
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve))
  }

  /** The slot across instances, once this instance's own place is taken (so at most `concurrency` of its jobs ask). */
  async #acquireShared (): Promise<() => Promise<void>> {
    if (this.#shared === undefined) return async () => {}
    this.#waitingForSlot++
    try {
      return await this.#shared.acquire()
    } finally {
      this.#waitingForSlot--
    }
  }

  #publish (): void {
    this.#shared?.publish(this.running + this.waiting)
  }

  #observe (generation: TimedGeneration): void {
    const { seconds } = generation
    const previous = this.#generationSeconds
    this.#generationSeconds = previous === null ? seconds : previous * (1 - NEWEST_WEIGHT) + seconds * NEWEST_WEIGHT
    for (const listener of this.#listeners) {
      try {
        listener(generation)
      } catch {
        // Whoever listens (metrics) cannot fail a generation or keep its place taken.
      }
    }
  }

  #release (): void {
    const next = this.#waiting.shift()
    if (next !== undefined) next() // the place passes straight to the next in line
    else this.#running--
    this.#publish()
  }
}

export interface QueueReservation {
  run: <T>(work: () => Promise<T>) => Promise<T>
  release: () => void
}
