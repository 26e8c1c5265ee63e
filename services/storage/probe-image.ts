import { imageSize } from 'image-size'
import { isoBoxes } from './container-structure.js'
import type { FileWindow } from './file-window.js'
import { walkJpeg } from './jpeg-walk.js'
import { readTiffDirectory } from './tiff-directory.js'

export interface ImageDimensions {
  width: number
  height: number
}

/** Image formats whose size the probe can read. */
export type ImageFormat = 'png' | 'apng' | 'jpg' | 'webp' | 'gif' | 'avif' | 'bmp' | 'tiff'

// Header structures (an AVIF meta box) larger than this are not plausible;
// refusing them keeps a crafted file from costing memory.
const MAX_HEADER_BYTES = 4 * 1024 * 1024

/**
 * Width and height as a viewer shows the image (EXIF orientations 5–8 turn a
 * JPEG by 90°), or null when the file has no readable image header.
 *
 * `head` (the file's first bytes) is measured first. Only where a format lets
 * the header sit anywhere in the file — JPEG segments, a TIFF directory, AVIF
 * boxes — is the file walked, and then only the header bytes are kept and
 * handed to image-size as a compact stand-in for the file.
 */
export async function imageDimensions (reader: FileWindow, head: Buffer, format: ImageFormat): Promise<ImageDimensions | null> {
  const fromHead = measure(head)
  if (fromHead !== null) return fromHead
  switch (format) {
    case 'jpg': return measure(await jpegHeader(reader))
    case 'tiff': return measure(await tiffFirstDirectory(reader))
    case 'avif': return measure(await isoBoxesWithoutMediaData(reader))
    default: return null
  }
}

function measure (bytes: Buffer | null): ImageDimensions | null {
  if (bytes === null) return null
  try {
    // A copy that owns its memory: image-size views `bytes.buffer` from the
    // byte offset on, and would read past the end of a slice of a pooled
    // Buffer into whatever bytes lie there.
    const { width, height, orientation } = imageSize(new Uint8Array(bytes))
    if (!(width > 0) || !(height > 0)) return null
    return orientation !== undefined && orientation >= 5 ? { width: height, height: width } : { width, height }
  } catch {
    return null
  }
}

// Every JPEG frame header (baseline, extended, progressive, lossless,
// arithmetic): they all keep height and width at the same offsets.
const JPEG_FRAME_MARKERS = new Set([0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf])

/** SOI + the EXIF segment (for orientation) + the frame header, found by walking the segments. */
async function jpegHeader (reader: FileWindow): Promise<Buffer | null> {
  const parts: Buffer[] = [Buffer.from([0xff, 0xd8])]
  let exifSeen = false
  let header: Buffer | null = null
  await walkJpeg(reader, async ({ type, position, length }) => {
    if (type === 0xda || type === 0xd9) return true // image data or end, and still no frame header
    const isFrame = JPEG_FRAME_MARKERS.has(type)
    if (!isFrame && (type !== 0xe1 || exifSeen)) return false
    const segment = await reader.bytes(position, length) as Buffer // the walk saw it fit
    if (isFrame) {
      // image-size only reads SOF0–2; the size fields sit at the same place in every SOFn
      header = Buffer.concat([...parts, Buffer.from([0xff, 0xc0]), segment.subarray(2)])
      return true
    }
    if (segment.toString('latin1', 4, 10) === 'Exif\0\0') {
      exifSeen = true
      parts.push(segment)
    }
    return false
  })
  return header
}

/** The TIFF header and its first directory, re-laid out so the directory follows the header. */
async function tiffFirstDirectory (reader: FileWindow): Promise<Buffer | null> {
  const directory = await readTiffDirectory(reader)
  if (directory === null) return null
  const { littleEndian, big, header, countBytes, entries } = directory
  const compact = Buffer.alloc(header.length + countBytes.length + entries.length + (big ? 8 : 4))
  header.copy(compact)
  if (big) {
    if (littleEndian) compact.writeBigUInt64LE(BigInt(header.length), 8)
    else compact.writeBigUInt64BE(BigInt(header.length), 8)
  } else if (littleEndian) {
    compact.writeUInt32LE(header.length, 4)
  } else {
    compact.writeUInt32BE(header.length, 4)
  }
  countBytes.copy(compact, header.length)
  entries.copy(compact, header.length + countBytes.length)
  return compact
}

/** The top-level ISO-BMFF boxes that describe an AVIF image (ftyp, meta), skipping the pixel data. */
async function isoBoxesWithoutMediaData (reader: FileWindow): Promise<Buffer | null> {
  const described = (await isoBoxes(reader)).boxes.filter((box) => box.type === 'ftyp' || box.type === 'meta')
  const meta = described.findIndex((box) => box.type === 'meta')
  if (meta < 0) return null
  const kept = described.slice(0, meta + 1)
  if (kept.reduce((sum, box) => sum + box.length, 0) > MAX_HEADER_BYTES) return null
  const parts: Buffer[] = []
  for (const box of kept) parts.push(await reader.bytes(box.position, box.length) as Buffer) // the walk saw each fit
  return Buffer.concat(parts)
}
