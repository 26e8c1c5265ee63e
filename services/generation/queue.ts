import { QueueFullError } from '../errors.js'

/**
 * Lets at most `concurrency` generations run at once on one backend (a GPU
 * takes one or two) and at most `limit` wait. A place is reserved before a
 * run is created, so a request that would be refused is refused before
 * anything is written.
 */
export class GenerationQueue {
  readonly name: string
  readonly #concurrency: number
  readonly #limit: number
  #running = 0
  #reserved = 0
  readonly #waiting: Array<() => void> = []

  constructor (name: string, options: { concurrency: number, limit: number }) {
    this.name = name
    this.#concurrency = options.concurrency
    this.#limit = options.limit
  }

  get running (): number {
    return this.#running
  }

  /** places taken but not running: waiting in line, or reserved by a run still in its text stages */
  get waiting (): number {
    return this.#reserved + this.#waiting.length
  }

  /** Takes a place or throws QUEUE_FULL (503). Every reservation must be run or released. */
  reserve (): QueueReservation {
    if (this.#running + this.waiting >= this.#concurrency + this.#limit) throw new QueueFullError(this.name)
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
        try {
          return await work()
        } finally {
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
