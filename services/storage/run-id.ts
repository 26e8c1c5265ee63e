import { randomBytes } from 'node:crypto'
import { InvalidRunIdError } from '../errors.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

let lastMillis = 0
let sequence = 0

/**
 * A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then randomness. Ids made
 * in the same millisecond by this process still sort in creation order,
 * because the 12-bit rand_a field carries a counter.
 */
export function uuidv7 (now: number = Date.now()): string {
  if (now <= lastMillis) {
    sequence++
    if (sequence > 0xfff) {
      // counter exhausted: borrow the next millisecond rather than go backwards
      lastMillis++
      sequence = 0
    }
  } else {
    lastMillis = now
    sequence = 0
  }
  const bytes = randomBytes(16)
  const ms = lastMillis
  bytes[0] = Math.floor(ms / 2 ** 40) & 0xff
  bytes[1] = Math.floor(ms / 2 ** 32) & 0xff
  bytes[2] = (ms >>> 24) & 0xff
  bytes[3] = (ms >>> 16) & 0xff
  bytes[4] = (ms >>> 8) & 0xff
  bytes[5] = ms & 0xff
  bytes[6] = 0x70 | ((sequence >>> 8) & 0x0f)
  bytes[7] = sequence & 0xff
  bytes[8] = 0x80 | (bytes[8]! & 0x3f)
  const hex = bytes.toString('hex')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

export function isRunId (value: unknown): value is string {
  return typeof value === 'string' && UUID.test(value)
}

/**
 * Checked before any path is built from a run id, so that nothing a client
 * sends can become a path component. Returns the canonical lowercase form.
 */
export function assertRunId (value: unknown): string {
  if (!isRunId(value)) {
    // String() throws for some objects (null prototype, throwing toString); a bad id must still be a 400.
    throw new InvalidRunIdError(typeof value === 'string' ? JSON.stringify(value).slice(0, 80) : `(${typeof value})`)
  }
  return value.toLowerCase()
}
