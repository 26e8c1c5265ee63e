import { crc32, deflateSync } from 'node:zlib'

// PNG files made byte by byte, for kinds that pngjs does not write (palettes, 1-bit).

function chunk (type: string, data: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data])
  const length = Buffer.alloc(4)
  length.writeUInt32BE(data.length)
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(body))
  return Buffer.concat([length, body, crc])
}

/**
 * A PNG of unfiltered rows (the bytes `row` makes for each), with
 * extra chunks (PLTE, tRNS) between the header and the data.
 */
export function pngFile (options: { width: number, height: number, bitDepth: number, colorType: number, row: (y: number) => Buffer, chunks?: Array<[string, Buffer]> }): Buffer {
  const header = Buffer.alloc(13)
  header.writeUInt32BE(options.width, 0)
  header.writeUInt32BE(options.height, 4)
  header.set([options.bitDepth, options.colorType, 0, 0, 0], 8)
  const rows = Buffer.concat(Array.from({ length: options.height }, (_, y) => Buffer.concat([Buffer.from([0]), options.row(y)])))
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    ...(options.chunks ?? []).map(([type, data]) => chunk(type, data)),
    chunk('IDAT', deflateSync(rows)),
    chunk('IEND', Buffer.alloc(0))
  ])
}
