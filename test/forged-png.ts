import { crc32, deflateSync } from 'node:zlib'

// PNGs made by hand, byte by byte, for what no encoder writes: a size
// claimed without the pixels, a chunk that is not whole, palettes, 1 bit.

export const PNG_SIGNATURE = Buffer.from('89504e470d0a1a0a', 'hex')

/** One chunk: length, type, data and a correct CRC. */
export function pngChunk (type: string, data: Buffer): Buffer {
  const chunk = Buffer.alloc(12 + data.length)
  chunk.writeUInt32BE(data.length, 0)
  chunk.write(type, 4, 'latin1')
  data.copy(chunk, 8)
  chunk.writeUInt32BE(crc32(chunk.subarray(4, 8 + data.length)), 8 + data.length)
  return chunk
}

/** An intact IHDR chunk of an 8-bit RGB image of that size. */
export function pngHeader (width: number, height: number): Buffer {
  const data = Buffer.alloc(13)
  data.writeUInt32BE(width, 0)
  data.writeUInt32BE(height, 4)
  data.set([8, 2], 8) // bit depth, colour type RGB
  return pngChunk('IHDR', data)
}

/** Issue 9's forgery, 100 bytes: the signature, an intact IHDR claiming 100000 × 100000 pixels, the start of its image data. */
export function forgedPng (): Buffer {
  return Buffer.concat([PNG_SIGNATURE, pngHeader(100_000, 100_000), pngChunk('IDAT', Buffer.alloc(55))])
}

/**
 * A whole PNG of unfiltered rows (the bytes `row` makes for each), with
 * extra chunks (PLTE, tRNS) between the header and the data.
 */
export function pngFile (options: { width: number, height: number, bitDepth: number, colorType: number, row: (y: number) => Buffer, chunks?: Array<[string, Buffer]> }): Buffer {
  const header = Buffer.alloc(13)
  header.writeUInt32BE(options.width, 0)
  header.writeUInt32BE(options.height, 4)
  header.set([options.bitDepth, options.colorType, 0, 0, 0], 8)
  const rows = Buffer.concat(Array.from({ length: options.height }, (_, y) => Buffer.concat([Buffer.from([0]), options.row(y)])))
  return Buffer.concat([
    PNG_SIGNATURE,
    pngChunk('IHDR', header),
    ...(options.chunks ?? []).map(([type, data]) => pngChunk(type, data)),
    pngChunk('IDAT', deflateSync(rows)),
    pngChunk('IEND', Buffer.alloc(0))
  ])
}
