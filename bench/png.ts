import { PNG } from 'pngjs'

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
