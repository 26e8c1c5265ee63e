import { crc32 } from 'node:zlib'
import { fourCC, isoProblem, riffProblem } from './container-structure.js'
import type { FileWindow } from './file-window.js'
import { walkJpeg } from './jpeg-walk.js'
import type { ImageFormat } from './probe-image.js'
import { readTiffDirectory, tiffNumbers, tiffValueOutside } from './tiff-directory.js'

// Whether an image file is whole: walked from its signature to its end mark
// (PNG IEND, JPEG EOI, GIF trailer), or, where a format has none, its
// declared sizes checked against the file. Headers and markers only, no
// decode: a decoder costs what the pixel count says, and that is the risk
// being guarded against. Each function answers what is wrong, or null.

export async function imageProblem (reader: FileWindow, format: ImageFormat): Promise<string | null> {
  switch (format) {
    case 'png':
    case 'apng':
      return await pngProblem(reader)
    case 'jpg': return await jpegProblem(reader)
    case 'gif': return await gifProblem(reader)
    case 'webp': return await riffProblem(reader, [])
    case 'avif': return await isoProblem(reader, ['meta', 'mdat'])
    case 'bmp': return await bmpProblem(reader)
    case 'tiff': return await tiffProblem(reader)
  }
}

/** Chunk by chunk from the signature to IEND; the IHDR's checksum is checked, and image data must come before the end. */
async function pngProblem (reader: FileWindow): Promise<string | null> {
  let position = 8
  let imageData = false
  for (;;) {
    const header = await reader.bytes(position, 8)
    if (header === null) return 'it ends before its IEND chunk'
    const length = header.readUInt32BE(0)
    const type = header.toString('latin1', 4, 8)
    if (length > 0x7fffffff) return `its ${fourCC(type)} chunk has an impossible length`
    if (position + 12 + length > reader.size) return `its ${fourCC(type)} chunk runs past the end of the file`
    if (position === 8 && !(await ihdrIntact(reader, type, length))) return 'its IHDR chunk is damaged'
    if (type === 'IDAT') imageData = true
    if (type === 'IEND') return imageData ? null : 'it has no image data (IDAT)'
    position += 12 + length
  }
}

/** The first chunk is a 13-byte IHDR whose checksum matches: the size it gives can be trusted. */
async function ihdrIntact (reader: FileWindow, type: string, length: number): Promise<boolean> {
  if (type !== 'IHDR' || length !== 13) return false
  const chunk = await reader.bytes(12, 4 + 13 + 4) as Buffer // type, data, CRC: the caller saw them fit
  return crc32(chunk.subarray(0, 17)) === chunk.readUInt32BE(17)
}

/** Segment by segment, and through the scan data, to the EOI marker. */
async function jpegProblem (reader: FileWindow): Promise<string | null> {
  return await walkJpeg(reader, () => false)
}

/** Block by block from the screen descriptor to the trailer (0x3B), with at least one image. */
async function gifProblem (reader: FileWindow): Promise<string | null> {
  const screen = await reader.bytes(0, 13)
  if (screen === null) return 'it ends inside its header'
  let position = 13 + colourTableBytes(screen[10] as number)
  let images = 0
  for (;;) {
    const block = await reader.bytes(position, 1)
    if (block === null) return 'it ends before its trailer'
    switch (block[0]) {
      case 0x3b:
        return images > 0 ? null : 'it holds no image'
      case 0x21: // extension: introducer, label, sub-blocks
        position = await afterSubBlocks(reader, position + 2)
        break
      case 0x2c: { // image: descriptor, local colour table, LZW code size, sub-blocks
        const descriptor = await reader.bytes(position, 10)
        if (descriptor === null) return 'it ends before its trailer'
        position = await afterSubBlocks(reader, position + 10 + colourTableBytes(descriptor[9] as number) + 1)
        images++
        break
      }
      default:
        return `no block starts at byte ${position}`
    }
    if (position < 0) return 'it ends before its trailer'
  }
}

function colourTableBytes (flags: number): number {
  return (flags & 0x80) !== 0 ? 3 * 2 ** ((flags & 0x07) + 1) : 0
}

/** The position after a chain of data sub-blocks (each a length byte and data, ended by length 0), or -1. */
async function afterSubBlocks (reader: FileWindow, from: number): Promise<number> {
  let position = from
  for (;;) {
    const length = await reader.bytes(position, 1)
    if (length === null) return -1
    position += 1 + (length[0] as number)
    if (length[0] === 0) return position
  }
}

// Uncompressed rows (BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS) have a size the header implies.
const BMP_UNCOMPRESSED = new Set([0, 3, 6])

/** The pixel array the header (BITMAPINFOHEADER or a later one) describes lies within the file. */
async function bmpProblem (reader: FileWindow): Promise<string | null> {
  const header = await reader.bytes(0, 38)
  if (header === null) return 'it ends inside its header'
  const pixelsAt = header.readUInt32LE(10)
  const width = Math.abs(header.readInt32LE(18))
  const height = Math.abs(header.readInt32LE(22)) // negative: rows stored top-down
  const bitsPerPixel = header.readUInt16LE(28)
  const compression = header.readUInt32LE(30)
  const pixelBytes = BMP_UNCOMPRESSED.has(compression)
    ? Math.ceil(width * bitsPerPixel / 32) * 4 * height // rows padded to 4 bytes
    : header.readUInt32LE(34) // compressed: the size the header declares
  return pixelsAt + pixelBytes > reader.size ? 'its pixel data runs past the end of the file' : null
}

// StripOffsets/StripByteCounts, and TileOffsets/TileByteCounts for tiled images
const TIFF_STRIPS: Array<[number, number]> = [[273, 279], [324, 325]]

/** The first image's strips (or tiles), and every value its directory points to, lie within the file. */
async function tiffProblem (reader: FileWindow): Promise<string | null> {
  const directory = await readTiffDirectory(reader)
  if (directory === null || directory.nextAt + (directory.big ? 8 : 4) > reader.size) return 'its first directory lies outside the file'
  const outside = tiffValueOutside(reader, directory)
  if (outside !== null) return `the values of its tag ${outside} lie past the end of the file`
  for (const [offsetsTag, countsTag] of TIFF_STRIPS) {
    const offsets = await tiffNumbers(reader, directory, offsetsTag)
    const counts = await tiffNumbers(reader, directory, countsTag)
    if (offsets === undefined && counts === undefined) continue
    if (offsets == null || counts == null || offsets.length !== counts.length) return 'its strip table cannot be read'
    const overrun = offsets.some((offset, i) => offset + (counts[i] as number) > reader.size)
    return overrun ? 'its image data runs past the end of the file' : null
  }
  return 'it has no image data (no strips or tiles)'
}
