/**
 * A least-recently-used map bounded by total weight (bytes for media, 1 per
 * entry for metadata). Map keeps insertion order, so re-inserting on a hit
 * makes the first key the least recently used one.
 */
export class LruCache<K, V> {
  readonly #entries = new Map<K, { value: V, weight: number }>()
  readonly #capacity: number
  readonly #weigh: (value: V) => number
  #weight = 0

  constructor (capacity: number, weigh: (value: V) => number = () => 1) {
    this.#capacity = capacity
    this.#weigh = weigh
  }

  get (key: K): V | undefined {
    const entry = this.#entries.get(key)
    if (entry === undefined) return undefined
    this.#entries.delete(key)
    this.#entries.set(key, entry)
    return entry.value
  }

  /** Returns false when the value alone is heavier than the whole cache. */
  set (key: K, value: V): boolean {
    const weight = this.#weigh(value)
    this.delete(key)
    if (weight > this.#capacity) return false
    this.#entries.set(key, { value, weight })
    this.#weight += weight
    while (this.#weight > this.#capacity) {
      const oldest = this.#entries.keys().next().value as K
      this.delete(oldest)
    }
    return true
  }

  delete (key: K): void {
    const entry = this.#entries.get(key)
    if (entry === undefined) return
    this.#entries.delete(key)
    this.#weight -= entry.weight
  }

  deleteWhere (predicate: (key: K) => boolean): void {
    for (const key of [...this.#entries.keys()]) if (predicate(key)) this.delete(key)
  }

  get weight (): number {
    return this.#weight
  }

  get size (): number {
    return this.#entries.size
  }
}
