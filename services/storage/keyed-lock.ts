/**
 * Serialises work per key (one run), while different keys run in parallel.
 * Keys with nothing queued are forgotten, so the map does not grow with the
 * number of runs ever touched.
 */
export class KeyedLock {
  readonly #tails = new Map<string, Promise<unknown>>()

  async run<T> (key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve()
    const result = previous.then(work)
    const tail = result.then(() => {}, () => {})
    this.#tails.set(key, tail)
    try {
      return await result
    } finally {
      if (this.#tails.get(key) === tail) this.#tails.delete(key)
    }
  }

  get size (): number {
    return this.#tails.size
  }
}
