import { PNG } from 'pngjs'

/** The two images every media bench serves: 65 533 bytes (128×170) and 1 048 617 bytes (512×682). */
export function servedImages (): { small: { label: string, bytes: Buffer }, large: { label: string, bytes: Buffer } } {
  return {
    small: { label: '64 KiB', bytes: noisyPng(64 * 1024, 128, 64) },
    large: { label: '1 MiB', bytes: noisyPng(1024 * 1024, 512, 1024) }
  }
}

/**
 * A real RGB PNG of about `targetBytes`. The pixels are noise from a seeded
 * generator: deflate cannot shrink them, so the file size follows the pixel
 * count and is the same on every run.
 */
export function noisyPng (targetBytes: number, width: number, seed: number): Buffer {
  // Each RGB row is 3 bytes a pixel plus one filter byte; noise stays that big.
  const height = Math.max(1, Math.round(targetBytes / (width * 3 + 1)))
  const png = new PNG({ width, height })
  let state = seed >>> 0 || 1
  for (let i = 0; i < png.data.length; i += 4) {
    // xorshift32: cheap, deterministic, good enough to defeat deflate
    state ^= state << 13
    state >>>= 0
    state ^= state >>> 17
    state ^= state << 5
    state >>>= 0
    png.data[i] = state & 0xff
    png.data[i + 1] = (state >>> 8) & 0xff
    png.data[i + 2] = (state >>> 16) & 0xff
    png.data[i + 3] = 0xff
  }
  return PNG.sync.write(png, { colorType: 2 })
}
