import type { Logger } from '../runstore.js'

export interface RepeatingTaskOptions {
  /** 0: off */
  intervalMs: number
  work: () => Promise<void>
  /** logged with the error when a run of `work` fails */
  failure: string
  logger: Logger
}

/**
 * Runs `work` every `intervalMs`, the first time one interval after start
 * (a restart never does it at once). A run that takes longer than the
 * interval is not overlapped: the next is planned when it ends. A failed run
 * is logged and the next interval tries again. close() stops planning and
 * waits for a run under way. Its timer never keeps the process alive.
 */
export class RepeatingTask {
  readonly intervalMs: number
  readonly #options: RepeatingTaskOptions
  #timer: NodeJS.Timeout | null = null
  #running: Promise<void> | null = null
  #closed = false

  constructor (options: RepeatingTaskOptions) {
    this.intervalMs = options.intervalMs
    this.#options = options
  }

  /** Plans the first run; does nothing when the interval is 0 (off). */
  start (): void {
    if (this.intervalMs > 0) this.#plan()
  }

  /** Runs the work now, unless a run is under way (then that run's end is awaited). */
  async runNow (): Promise<void> {
    this.#running ??= this.#options.work().catch((err: unknown) => {
      this.#options.logger.error({ err }, this.#options.failure)
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
    }, this.intervalMs)
    this.#timer.unref()
  }
}
