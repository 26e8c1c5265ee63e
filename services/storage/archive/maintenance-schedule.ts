import type { Logger } from '../../../runstore.js'

const HOUR_MS = 60 * 60 * 1000

/**
 * Runs the store's maintenance (archive, then prune) every `intervalHours`,
 * the first time one interval after start: a restart never archives at
 * once. A run that takes longer than the interval is not overlapped: the
 * next is planned when it ends. close() stops planning and waits for a run
 * under way.
 */
export class MaintenanceSchedule {
  readonly intervalHours: number
  readonly #work: () => Promise<void>
  readonly #logger: Logger
  #timer: NodeJS.Timeout | null = null
  #running: Promise<void> | null = null
  #closed = false

  constructor (options: { intervalHours: number, work: () => Promise<void>, logger: Logger }) {
    this.intervalHours = options.intervalHours
    this.#work = options.work
    this.#logger = options.logger
  }

  /** Plans the first run; does nothing when the interval is 0 (off). */
  start (): void {
    if (this.intervalHours > 0) this.#plan()
  }

  /** Runs the maintenance now, unless a run is under way (then that run's end is awaited). */
  async runNow (): Promise<void> {
    this.#running ??= this.#work().catch((err: unknown) => {
      this.#logger.error({ err }, 'the scheduled maintenance (archive, prune) failed; the next interval tries again')
    }).finally(() => { this.#running = null })
    await this.#running
  }

  async close (): Promise<void> {
    this.#closed = true
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
    await this.#running
  }

  #plan (): void {
    this.#timer = setTimeout(() => {
      this.#timer = null
      void this.runNow().then(() => { if (!this.#closed) this.#plan() })
    }, this.intervalHours * HOUR_MS)
    this.#timer.unref()
  }
}
