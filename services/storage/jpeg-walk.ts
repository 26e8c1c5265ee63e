import type { FileWindow } from './file-window.js'

/** A JPEG marker with a length: where its segment starts (at the 0xFF) and how many bytes it has, marker included. */
export interface JpegSegment {
  type: number
  position: number
  length: number
}

/**
 * Walks a JPEG from after its SOI: segment by segment by their lengths, and
 * after each SOS through the entropy-coded data to the next marker (0xFF
 * not followed by 0x00, a restart marker or fill), so that a file cut
 * inside its pixel data is told apart from a whole one. `visit` sees every
 * segment (each one lies within the file) and EOI; it returns true to stop.
 *
 * @returns what is wrong, or null once EOI is reached or `visit` stopped
 */
export async function walkJpeg (reader: FileWindow, visit: (segment: JpegSegment) => boolean | Promise<boolean>): Promise<string | null> {
  let position = 2
  for (;;) {
    const marker = await reader.bytes(position, 2)
    if (marker === null) return 'it ends before its end-of-image marker'
    if (marker[0] !== 0xff) return `no marker at byte ${position}`
    const type = marker[1] as number
    if (type === 0xd9) {
      await visit({ type, position, length: 2 })
      return null
    }
    if (type === 0xff) { // fill byte before a marker
      position += 1
      continue
    }
    if ((type >= 0xd0 && type <= 0xd8) || type === 0x01) { // markers without a length
      position += 2
      continue
    }
    const lengthBytes = await reader.bytes(position + 2, 2)
    if (lengthBytes === null) return 'it ends before its end-of-image marker'
    const segment = { type, position, length: 2 + lengthBytes.readUInt16BE(0) }
    if (position + segment.length > reader.size) return 'a segment runs past the end of the file'
    if (await visit(segment)) return null
    position = type === 0xda ? await endOfScan(reader, position + segment.length) : position + segment.length
    if (position < 0) return 'it ends inside its image data, before the end-of-image marker'
  }
}

/** Where the marker after a scan's entropy-coded data starts, or -1 at the end of the file. */
async function endOfScan (reader: FileWindow, from: number): Promise<number> {
  let position = from
  for (;;) {
    // each 0xFF is looked at with the byte after it, so a window ends on an 0xFF only when the file does
    const chunk = await reader.from(position, 2)
    if (chunk === null) return -1
    let at = chunk.indexOf(0xff)
    while (at >= 0 && at + 1 < chunk.length) {
      const byte = chunk[at + 1] as number
      if (byte === 0x00 || (byte >= 0xd0 && byte <= 0xd7)) at = chunk.indexOf(0xff, at + 2) // stuffed 0xFF, restart marker
      else if (byte === 0xff) at += 1 // fill: the marker starts at the next 0xFF
      else return position + at
    }
    position += at < 0 ? chunk.length : at // all scan data, or an 0xFF at the window's last byte: go on from there
  }
}
