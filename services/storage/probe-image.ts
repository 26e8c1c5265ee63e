import type { FileHandle } from 'node:fs/promises'
import { imageSize } from 'image-size'

export interface ImageDimensions {
  width: number
  height: number
}

/** Image formats whose size the probe can read. */
export type ImageFormat = 'png' | 'apng' | 'jpg' | 'webp' | 'gif' | 'avif' | 'bmp' | 'tiff'

const WINDOW_BYTES = 64 * 1024
// Header structures (a TIFF directory, an AVIF meta box) larger than this are
// not plausible; refusing them keeps a crafted file from costing memory.
const MAX_HEADER_BYTES = 4 * 1024 * 1024
const MAX_TIFF_ENTRIES = 4096

/**
 * Width and height as a viewer shows the image (EXIF orientations 5–8 turn a
 * JPEG by 90°), or null when the file has no readable image header.
 *
 * `head` (the file's first bytes) is measured first. Only where a format lets
 * the header sit anywhere in the file — JPEG segments, a TIFF directory, AVIF
 * boxes — is the file walked, and then only the header bytes are kept and
 * handed to image-size as a compact stand-in for the file.
 */
export async function imageDimensions (handle: FileHandle, size: number, head: Buffer, format: ImageFormat): Promise<ImageDimensions | null> {
  const fromHead = measure(head)
  if (fromHead !== null) return fromHead
  const reader = new WindowReader(handle, size, head)
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

/** Random access to a file through one cached window, starting with the head already read. */
class WindowReader {
  readonly #handle: FileHandle
  readonly size: number
  #window: Buffer
  #start = 0

  constructor (handle: FileHandle, size: number, head: Buffer) {
    this.#handle = handle
    this.size = size
    this.#window = head
  }

  /** `length` bytes at `position`, or null past the end of the file. The result is never overwritten. */
  async bytes (position: number, length: number): Promise<Buffer | null> {
    if (position < 0 || position + length > this.size) return null
    if (position < this.#start || position + length > this.#start + this.#window.length) {
      const want = Math.min(Math.max(length, WINDOW_BYTES), this.size - position)
      const buffer = Buffer.allocUnsafe(want)
      const { bytesRead } = await this.#handle.read(buffer, 0, want, position)
      this.#window = buffer.subarray(0, bytesRead)
      this.#start = position
      if (bytesRead < length) return null
    }
    return this.#window.subarray(position - this.#start, position - this.#start + length)
  }
}

// Every JPEG frame header (baseline, extended, progressive, lossless,
// arithmetic): they all keep height and width at the same offsets.
const JPEG_FRAME_MARKERS = new Set([0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf])

/** SOI + the EXIF segment (for orientation) + the frame header, found by walking the segments. */
async function jpegHeader (reader: WindowReader): Promise<Buffer | null> {
  const parts: Buffer[] = [Buffer.from([0xff, 0xd8])]
  let exifSeen = false
  let position = 2
  for (;;) {
    const marker = await reader.bytes(position, 4)
    if (marker === null || marker[0] !== 0xff) return null
    const type = marker[1] as number
    if (type === 0xff) { // fill byte before a marker
      position += 1
      continue
    }
    if ((type >= 0xd0 && type <= 0xd8) || type === 0x01) { // markers without a length
      position += 2
      continue
    }
    if (type === 0xda || type === 0xd9) return null // image data or end, and still no frame header
    const segmentLength = 2 + marker.readUInt16BE(2)
    const isFrame = JPEG_FRAME_MARKERS.has(type)
    if (isFrame || (type === 0xe1 && !exifSeen)) {
      const segment = await reader.bytes(position, segmentLength)
      if (segment === null) return null
      if (isFrame) {
        // image-size only reads SOF0–2; the size fields sit at the same place in every SOFn
        parts.push(Buffer.from([0xff, 0xc0]), segment.subarray(2))
        return Buffer.concat(parts)
      }
      if (segment.toString('latin1', 4, 10) === 'Exif\0\0') {
        exifSeen = true
        parts.push(segment)
      }
    }
    position += segmentLength
  }
}

/** The TIFF header and its first directory, re-laid out so the directory follows the header. */
async function tiffFirstDirectory (reader: WindowReader): Promise<Buffer | null> {
  const start = await reader.bytes(0, 8)
  if (start === null) return null
  const littleEndian = start[0] === 0x49
  const big = (littleEndian ? start.readUInt16LE(2) : start.readUInt16BE(2)) === 43
  const headerLength = big ? 16 : 8
  const countLength = big ? 8 : 2
  const entryLength = big ? 20 : 12
  const nextOffsetLength = big ? 8 : 4
  const header = await reader.bytes(0, headerLength)
  if (header === null) return null
  const directoryOffset = big
    ? Number(littleEndian ? header.readBigUInt64LE(8) : header.readBigUInt64BE(8))
    : (littleEndian ? header.readUInt32LE(4) : header.readUInt32BE(4))
  const countBytes = await reader.bytes(directoryOffset, countLength)
  if (countBytes === null) return null
  const count = big
    ? Number(littleEndian ? countBytes.readBigUInt64LE(0) : countBytes.readBigUInt64BE(0))
    : (littleEndian ? countBytes.readUInt16LE(0) : countBytes.readUInt16BE(0))
  if (count === 0 || count > MAX_TIFF_ENTRIES) return null
  const entries = await reader.bytes(directoryOffset + countLength, count * entryLength)
  if (entries === null) return null
  const compact = Buffer.alloc(headerLength + countLength + entries.length + nextOffsetLength)
  header.copy(compact)
  if (big) {
    if (littleEndian) compact.writeBigUInt64LE(BigInt(headerLength), 8)
    else compact.writeBigUInt64BE(BigInt(headerLength), 8)
  } else if (littleEndian) {
    compact.writeUInt32LE(headerLength, 4)
  } else {
    compact.writeUInt32BE(headerLength, 4)
  }
  countBytes.copy(compact, headerLength)
  entries.copy(compact, headerLength + countLength)
  return compact
}

/** The top-level ISO-BMFF boxes that describe an AVIF image (ftyp, meta), skipping the pixel data. */
async function isoBoxesWithoutMediaData (reader: WindowReader): Promise<Buffer | null> {
  const kept: Buffer[] = []
  let keptBytes = 0
  let position = 0
  while (position + 8 <= reader.size) {
    const header = await reader.bytes(position, Math.min(16, reader.size - position))
    if (header === null) return null
    const type = header.toString('latin1', 4, 8)
    let boxLength = header.readUInt32BE(0)
    if (boxLength === 1) {
      if (header.length < 16) return null
      boxLength = Number(header.readBigUInt64BE(8))
    } else if (boxLength === 0) {
      boxLength = reader.size - position
    }
    if (boxLength < 8) return null
    if (type === 'ftyp' || type === 'meta') {
      keptBytes += boxLength
      if (keptBytes > MAX_HEADER_BYTES) return null
      const box = await reader.bytes(position, boxLength)
      if (box === null) return null
      kept.push(box)
      if (type === 'meta') return Buffer.concat(kept)
    }
    position += boxLength
  }
  return null
}
