import { createHash } from 'node:crypto'

// The builtin generator's randomness: repeatable from the prompt and the seed.

/** sfc32 seeded from SHA-256: fast, and identical on every platform. */
export function randomFrom (...parts: Array<string | number>): () => number {
  const digest = createHash('sha256').update(parts.map(String).join('\u0000')).digest()
  let a = digest.readUInt32LE(0)
  let b = digest.readUInt32LE(4)
  let c = digest.readUInt32LE(8)
  let d = digest.readUInt32LE(12)
  return () => {
    a >>>= 0
    b >>>= 0
    c >>>= 0
    d >>>= 0
    const t = (a + b) | 0
    a = b ^ (b >>> 9)
    b = (c + (c << 3)) | 0
    c = (c << 21) | (c >>> 11)
    d = (d + 1) | 0
    const result = (t + d) | 0
    c = (c + result) | 0
    return (result >>> 0) / 4294967296
  }
}

export function wordsOf (prompt: string): string[] {
  return prompt.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []
}

export function hashWord (word: string): number {
  return createHash('sha256').update(word).digest().readUInt32LE(0)
}
