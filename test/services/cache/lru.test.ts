import t from 'tap'
import { LruCache } from '../../../services/cache/lru.js'

/**
 * Which of `keys` the cache still holds. It reads them, so pass them oldest
 * first: re-reading in that order leaves the recency order as it was.
 */
const holds = <K, V>(cache: LruCache<K, V>, keys: K[]): K[] => keys.filter((k) => cache.get(k) !== undefined)

t.test('get returns what set stored; misses are undefined', async (t) => {
  const cache = new LruCache<string, number>(10)
  t.equal(cache.get('a'), undefined)
  t.equal(cache.set('a', 1), true)
  t.equal(cache.get('a'), 1)
  t.equal(cache.size, 1)
  t.equal(cache.weight, 1, 'default weight is 1 per entry')
})

t.test('the least recently used entry is evicted first', async (t) => {
  const cache = new LruCache<string, string>(3)
  cache.set('a', 'A')
  cache.set('b', 'B')
  cache.set('c', 'C')
  cache.set('d', 'D')
  t.equal(cache.get('a'), undefined, 'oldest insert evicted')
  t.equal(cache.size, 3)

  // Reading b makes c the least recently used one.
  t.equal(cache.get('b'), 'B')
  cache.set('e', 'E')
  t.equal(cache.get('c'), undefined, 'c evicted, not b')
  t.equal(cache.get('b'), 'B')
  t.equal(cache.get('d'), 'D')
  t.equal(cache.get('e'), 'E')

  // Re-setting b counts as a use, which leaves d the least recently used one.
  cache.set('b', 'B2')
  cache.set('f', 'F')
  t.same(holds(cache, ['d', 'e', 'b', 'f']), ['e', 'b', 'f'], 'd was evicted')
  t.equal(cache.get('b'), 'B2')
})

t.test('weights: eviction frees enough weight for the new entry, oldest first', async (t) => {
  const cache = new LruCache<string, Buffer>(100, (b) => b.length)
  cache.set('a', Buffer.alloc(40))
  cache.set('b', Buffer.alloc(30))
  cache.set('c', Buffer.alloc(20))
  t.equal(cache.weight, 90)
  t.equal(cache.size, 3)

  cache.set('d', Buffer.alloc(50)) // 140: dropping a is enough
  t.equal(cache.weight, 100, 'filled exactly to capacity is allowed')
  t.same(holds(cache, ['a', 'b', 'c', 'd']), ['b', 'c', 'd'])

  cache.get('b') // order now c, d, b
  cache.set('e', Buffer.alloc(60)) // 160: drop c (140), then d (90)
  t.same(holds(cache, ['b', 'c', 'd', 'e']), ['b', 'e'])
  t.equal(cache.weight, 90)
  t.equal(cache.size, 2)
})

t.test('an entry heavier than the whole cache is refused and evicts nothing', async (t) => {
  const cache = new LruCache<string, Buffer>(100, (b) => b.length)
  cache.set('a', Buffer.alloc(60))
  cache.set('b', Buffer.alloc(40))
  t.equal(cache.set('huge', Buffer.alloc(101)), false)
  t.equal(cache.get('huge'), undefined)
  t.same(holds(cache, ['a', 'b']), ['a', 'b'], 'nothing evicted to make room for it')
  t.equal(cache.weight, 100)
  t.equal(cache.set('exact', Buffer.alloc(100)), true, 'exactly the capacity fits')
  t.same(holds(cache, ['a', 'b', 'exact']), ['exact'])
  t.equal(cache.weight, 100)
})

t.test('replacing a key updates its weight and value', async (t) => {
  const cache = new LruCache<string, Buffer>(100, (b) => b.length)
  cache.set('a', Buffer.alloc(10))
  cache.set('b', Buffer.alloc(20))
  t.equal(cache.set('a', Buffer.alloc(70, 1)), true)
  t.equal(cache.weight, 90, 'old weight of a replaced, not added')
  t.equal(cache.size, 2)
  t.equal(cache.get('a')!.length, 70)
  t.equal(cache.get('a')![0], 1, 'the new value')

  cache.set('a', Buffer.alloc(5))
  t.equal(cache.weight, 25, 'shrinking frees weight')

  // A replacement too heavy to keep drops the old value too: serving the
  // stale one for that key would be wrong.
  t.equal(cache.set('a', Buffer.alloc(200)), false)
  t.equal(cache.get('a'), undefined)
  t.equal(cache.get('b')!.length, 20)
  t.equal(cache.weight, 20)
  t.equal(cache.size, 1)
})

t.test('delete and deleteWhere', async (t) => {
  const cache = new LruCache<string, Buffer>(1000, (b) => b.length)
  cache.set('run1/a.png', Buffer.alloc(10))
  cache.set('run1/b.png', Buffer.alloc(20))
  cache.set('run10/a.png', Buffer.alloc(40))
  cache.set('run2/a.png', Buffer.alloc(80))

  cache.delete('missing') // no effect
  t.equal(cache.weight, 150)

  const asked: string[] = []
  cache.deleteWhere((key) => { asked.push(key); return key.startsWith('run1/') })
  t.same(asked.sort(), ['run1/a.png', 'run1/b.png', 'run10/a.png', 'run2/a.png'], 'every key asked once')
  t.same(holds(cache, ['run1/a.png', 'run1/b.png', 'run10/a.png', 'run2/a.png']), ['run10/a.png', 'run2/a.png'])
  t.equal(cache.weight, 120)
  t.equal(cache.size, 2)

  cache.delete('run2/a.png')
  t.equal(cache.get('run2/a.png'), undefined)
  t.equal(cache.weight, 40)
  cache.deleteWhere(() => true)
  t.equal(cache.size, 0)
  t.equal(cache.weight, 0)
  cache.deleteWhere(() => true) // on an empty cache
  t.equal(cache.size, 0)
})

t.test('capacity 0 keeps nothing', async (t) => {
  const counted = new LruCache<string, string>(0)
  t.equal(counted.set('a', 'A'), false)
  t.equal(counted.get('a'), undefined)
  t.equal(counted.size, 0)
  t.equal(counted.weight, 0)

  const bytes = new LruCache<string, Buffer>(0, (b) => b.length)
  t.equal(bytes.set('a', Buffer.alloc(1)), false)
  t.equal(bytes.size, 0)
  t.equal(bytes.weight, 0)
})

t.test('keys are compared by identity, like a Map', async (t) => {
  const cache = new LruCache<object, string>(2)
  const k1 = {}
  cache.set(k1, 'one')
  t.equal(cache.get({}), undefined)
  t.equal(cache.get(k1), 'one')
})
