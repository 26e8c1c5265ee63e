import { createHash, timingSafeEqual } from 'node:crypto'

/**
 * A check of `Authorization: Bearer <token>` against a configured token. Both
 * sides are compared as hashes, so the comparison takes the same time
 * whatever the lengths.
 */
export function bearerTokenCheck (token: string): (authorization: string | undefined) => boolean {
  const expected = digest(token)
  return (authorization) => {
    const header = authorization ?? ''
    const given = header.startsWith('Bearer ') ? header.slice('Bearer '.length) : ''
    return timingSafeEqual(digest(given), expected)
  }
}

function digest (value: string): Buffer {
  return createHash('sha256').update(value).digest()
}
