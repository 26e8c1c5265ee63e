import t, { type Test } from 'tap'
import { isRunId, assertRunId } from '../../../services/storage/run-id.js'

type RunIdModule = typeof import('../../../services/storage/run-id.js')

// uuidv7 keeps the last millisecond and counter in module state; a fresh copy
// per test makes each test's clock independent of the others.
const freshModule = async (t: Test): Promise<RunIdModule> =>
  await t.mockImport<RunIdModule>('../../../services/storage/run-id.js')

const UUIDV7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

/** The 48-bit Unix millisecond timestamp at the front of a UUIDv7. */
const millisOf = (id: string): number => parseInt(id.slice(0, 8) + id.slice(9, 13), 16)
/** The 12-bit rand_a field, which carries the same-millisecond counter. */
const counterOf = (id: string): number => parseInt(id.slice(15, 18), 16)

const isSorted = (ids: string[]): boolean => ids.every((id, i) => i === 0 || ids[i - 1]! < id)

t.test('uuidv7 has version 7, variant 10xx, lowercase hex and the given millisecond', async (t) => {
  const { uuidv7 } = await freshModule(t)
  const now = Date.UTC(2025, 2, 4, 5, 6, 7, 890)
  const id = uuidv7(now)
  t.match(id, UUIDV7)
  t.equal(id[14], '7', 'version nibble')
  t.ok((parseInt(id[19]!, 16) & 0b1100) === 0b1000, 'variant bits 10')
  t.equal(millisOf(id), now, 'embedded timestamp is now')
  t.equal(counterOf(id), 0, 'the first id of a millisecond has counter 0')
  t.ok(isRunId(id))
  t.equal(assertRunId(id), id)
})

t.test('every byte of the 48-bit timestamp lands where RFC 9562 puts it', async (t) => {
  const { uuidv7 } = await freshModule(t)
  const small = uuidv7(0x0123456789ab)
  t.equal(small.slice(0, 13), '01234567-89ab')
  const largest = uuidv7(2 ** 48 - 1)
  t.equal(largest.slice(0, 13), 'ffffffff-ffff')
  t.match(largest, UUIDV7)
})

t.test('without an argument the timestamp is the current time', async (t) => {
  const { uuidv7 } = await freshModule(t)
  const before = Date.now()
  const id = uuidv7()
  const after = Date.now()
  t.ok(millisOf(id) >= before && millisOf(id) <= after, `${millisOf(id)} within [${before}, ${after}]`)
})

t.test('10,000 ids made in a tight loop are unique and sort in generation order', async (t) => {
  const { uuidv7 } = await freshModule(t)
  const ids: string[] = []
  for (let i = 0; i < 10_000; i++) ids.push(uuidv7())
  t.equal(new Set(ids).size, ids.length, 'unique')
  t.ok(isSorted(ids), 'strictly increasing as strings')
  t.same([...ids].sort(), ids, 'string sort keeps generation order')
  t.ok(ids.every((id) => UUIDV7.test(id)), 'all are UUIDv7')
})

t.test('ids made in the same millisecond sort by a counter', async (t) => {
  const { uuidv7 } = await freshModule(t)
  const now = 1_700_000_000_000
  const ids = Array.from({ length: 100 }, () => uuidv7(now))
  t.ok(isSorted(ids))
  t.same(ids.map(millisOf), ids.map(() => now), 'all carry the same millisecond')
  t.same(ids.map(counterOf), ids.map((_, i) => i), 'counter counts up from 0')
  const next = uuidv7(now + 1)
  t.equal(counterOf(next), 0, 'a new millisecond restarts the counter')
  t.equal(millisOf(next), now + 1)
  t.ok(next > ids.at(-1)!)
})

t.test('when the counter runs out, the next millisecond is borrowed and order holds', async (t) => {
  const { uuidv7 } = await freshModule(t)
  const now = 1_700_000_000_000
  const ids = Array.from({ length: 5000 }, () => uuidv7(now))
  t.ok(isSorted(ids))
  t.equal(new Set(ids).size, ids.length)
  t.equal(millisOf(ids[4095]!), now)
  t.equal(counterOf(ids[4095]!), 0xfff, 'the last counter value of the millisecond')
  t.equal(millisOf(ids[4096]!), now + 1, 'the 4097th id moves on one millisecond')
  t.equal(counterOf(ids[4096]!), 0)
  // The real clock then reaches the borrowed millisecond: still after the others.
  const caughtUp = uuidv7(now + 1)
  t.equal(millisOf(caughtUp), now + 1)
  t.ok(caughtUp > ids.at(-1)!)
})

t.test('a clock that goes backwards does not make ids that sort before earlier ones', async (t) => {
  const { uuidv7 } = await freshModule(t)
  const now = 1_700_000_000_000
  const first = uuidv7(now)
  const ids = [first, uuidv7(now - 5000), uuidv7(now - 1), uuidv7(0), uuidv7(now)]
  t.ok(isSorted(ids), ids.join('\n'))
  t.same(ids.map(millisOf), ids.map(() => now), 'the latest millisecond seen is kept')
  const later = uuidv7(now + 10)
  t.equal(millisOf(later), now + 10, 'once the clock passes it again, its time is used')
  t.ok(later > ids.at(-1)!)
})

t.test('isRunId and assertRunId accept v4 and v7 UUIDs in any case', async (t) => {
  const valid = [
    '0193f1e2-7c4a-7b9e-8d2f-4c1a2b3c4d5e', // v7
    '0193F1E2-7C4A-7B9E-8D2F-4C1A2B3C4D5E',
    'f47ac10b-58cc-4372-a567-0e02b2c3d479', // v4
    'F47AC10B-58CC-4372-A567-0E02B2C3D479',
    'F47ac10b-58CC-4372-a567-0E02b2c3D479'
  ]
  for (const id of valid) {
    t.equal(isRunId(id), true, id)
    t.equal(assertRunId(id), id.toLowerCase(), `${id} in canonical lowercase`)
  }
})

t.test('anything that is not a UUID is refused with INVALID_RUN_ID (400)', async (t) => {
  const id = '0193f1e2-7c4a-7b9e-8d2f-4c1a2b3c4d5e'
  const invalid: unknown[] = [
    '..', '../etc', '', 'x'.repeat(36), `${id}\n`, `${id}/`, `/${id}`, ` ${id}`, `${id} `,
    `${id}/../../etc`, id.replaceAll('-', ''), `{${id}}`, id.slice(0, 35), `${id}0`,
    '0193f1e2-7c4a-7b9e-8d2f-4c1a2b3c4d5g', '0193f1e2_7c4a_7b9e_8d2f_4c1a2b3c4d5e', `${id}\0`,
    undefined, null, 42, 0x0193f1e2, true, Symbol('run'), ['0193f1e2-7c4a-7b9e-8d2f-4c1a2b3c4d5e'],
    { toString: () => id }, new String(id), Buffer.from(id), () => id, 10n,
    // Converting these to a string throws; they must still be a 400, not a TypeError.
    Object.create(null), { toString () { throw new Error('no') } }
  ]
  for (const value of invalid) {
    const label = typeof value === 'string' ? JSON.stringify(value) : typeof value
    t.equal(isRunId(value), false, `isRunId(${label})`)
    t.throws(() => assertRunId(value), { code: 'INVALID_RUN_ID', statusCode: 400 }, `assertRunId(${label})`)
  }
})

t.test('the error names the bad id, shortened, so logs stay readable', async (t) => {
  t.throws(() => assertRunId('../etc'), { message: 'run id "../etc" is not a UUID' })
  const long = 'a'.repeat(500)
  const err = t.throws(() => assertRunId(long)) as Error
  t.ok(err.message.length < 120, 'message is bounded')
  t.throws(() => assertRunId(42), { message: /^run id .*number.* is not a UUID$/ })
})
