import type { FileWindow } from './file-window.js'

// Whether a container file is whole, read from its framing alone: every box,
// chunk, element or page it declares must lie within the file. A file cut
// off anywhere but between two of them fails; one cut exactly there is a
// shorter file of its kind. Each function answers what is wrong, or null.
// Only headers are read (through the window), never the media data.

/** A four-letter code as it may appear in a message (a forged file's code is any bytes); GLB pads "BIN" with a zero. */
export function fourCC (code: string): string {
  const name = code.replace(/[\0 ]+$/, '')
  return /^[\x21-\x7e]{1,4}$/.test(name) ? `"${name}"` : 'unnamed'
}

export interface IsoBox {
  type: string
  position: number
  length: number
}

/** The top-level boxes of an ISO base media file (MP4, MOV, AVIF), up to the first that does not fit. */
export async function isoBoxes (reader: FileWindow): Promise<{ boxes: IsoBox[], problem: string | null }> {
  const boxes: IsoBox[] = []
  let position = 0
  while (position < reader.size) {
    const header = await reader.bytes(position, Math.min(16, reader.size - position))
    if (header === null || header.length < 8) return { boxes, problem: 'it ends inside a box header' }
    const type = header.toString('latin1', 4, 8)
    let length = header.readUInt32BE(0)
    if (length === 1) { // a 64-bit size follows the type
      if (header.length < 16) return { boxes, problem: 'it ends inside a box header' }
      length = Number(header.readBigUInt64BE(8))
    } else if (length === 0) { // the last box, to the end of the file
      length = reader.size - position
    }
    if (length < 8) return { boxes, problem: `its ${fourCC(type)} box has an impossible size` }
    if (position + length > reader.size) return { boxes, problem: `its ${fourCC(type)} box runs past the end of the file` }
    boxes.push({ type, position, length })
    position += length
  }
  return { boxes, problem: null }
}

/**
 * Every top-level box fits and those in `required` are there: a file cut
 * exactly between two boxes has lost its last one, the media data (mdat) or
 * the index of the samples in it (an MP4's moov).
 */
export async function isoProblem (reader: FileWindow, required: string[]): Promise<string | null> {
  const { boxes, problem } = await isoBoxes(reader)
  if (problem !== null) return problem
  const missing = required.find((type) => !boxes.some((box) => box.type === type))
  return missing === undefined ? null : `it has no ${missing} box`
}

// A RIFF size of all ones: a WAV written to a pipe, whose writer could not go back to fill in the sizes.
const UNKNOWN_RIFF_SIZE = 0xffffffff

/**
 * The RIFF file (WAV, WebP) is as long as its header says and each chunk fits
 * in it; `required` chunks are there. A WAV written as a stream (sizes all
 * ones) may run to the end of the file.
 */
export async function riffProblem (reader: FileWindow, required: string[], options: { streamed?: boolean } = {}): Promise<string | null> {
  const header = await reader.bytes(0, 12) as Buffer // file-type read these to recognise it
  const declared = header.readUInt32LE(4)
  const streamed = options.streamed === true && declared === UNKNOWN_RIFF_SIZE
  const end = streamed ? reader.size : 8 + declared
  if (end > reader.size) return `its RIFF header declares ${end} bytes, the file has ${reader.size}`
  const seen = new Set<string>()
  let position = 12
  while (position + 8 <= end) {
    const chunk = await reader.bytes(position, 8) as Buffer // within `end`, which lies within the file
    const id = chunk.toString('latin1', 0, 4)
    const length = chunk.readUInt32LE(4)
    seen.add(id)
    if (streamed && length === UNKNOWN_RIFF_SIZE) break
    if (position + 8 + length > end) return `its ${fourCC(id)} chunk runs past the end of the file`
    position += 8 + length + (length & 1) // chunks are padded to an even length
  }
  const missing = required.find((id) => !seen.has(id))
  return missing === undefined ? null : `it has no ${fourCC(missing)} chunk`
}

/** A GLB is as long as its header says, and its chunks fit in that. */
export async function glbProblem (reader: FileWindow): Promise<string | null> {
  const header = await reader.bytes(0, 12) as Buffer // file-type read these to recognise it
  const declared = header.readUInt32LE(8)
  if (declared > reader.size) return `its header declares ${declared} bytes, the file has ${reader.size}`
  let position = 12
  while (position + 8 <= declared) {
    const chunk = await reader.bytes(position, 8) as Buffer
    const length = chunk.readUInt32LE(0)
    if (position + 8 + length > declared) return `its ${fourCC(chunk.toString('latin1', 4, 8))} chunk runs past the end of the file`
    position += 8 + length
  }
  return null
}

const EBML_SEGMENT = 0x18538067
const EBML_CLUSTER = 0x1f43b675

interface EbmlElement {
  id: number
  dataStart: number
  /** null: unknown size (a live recording): the element runs until an element that cannot be its child */
  size: number | null
}

/** The element header at `position`, or what is wrong with it. */
async function ebmlElement (reader: FileWindow, position: number): Promise<EbmlElement | string> {
  const head = await reader.bytes(position, Math.min(12, reader.size - position)) as Buffer
  const idLength = vintLength(head[0] as number)
  if (idLength === 0 || idLength > 4) return `no element starts at byte ${position}`
  if (idLength >= head.length) return 'it ends inside an element header'
  const sizeLength = vintLength(head[idLength] as number)
  if (sizeLength === 0) return `no element starts at byte ${position}`
  if (idLength + sizeLength > head.length) return 'it ends inside an element header'
  const sizeBytes = head.subarray(idLength, idLength + sizeLength)
  // the length marker bit removed; all remaining bits set means "unknown"
  const first = (sizeBytes[0] as number) & (0xff >> sizeLength)
  const unknown = first === 0xff >> sizeLength && sizeBytes.subarray(1).every((b) => b === 0xff)
  let size = first
  for (const byte of sizeBytes.subarray(1)) size = size * 256 + byte
  return { id: head.readUIntBE(0, idLength), dataStart: position + idLength + sizeLength, size: unknown ? null : size }
}

/** Bytes of an EBML variable-length integer, from its first byte (0: invalid). */
function vintLength (first: number): number {
  for (let length = 1; length <= 8; length++) if (first & (0x100 >> length)) return length
  return 0
}

/**
 * A Matroska/WebM file: the EBML header, then a segment that fits. A segment
 * of unknown size (as a browser's MediaRecorder writes) and its clusters of
 * unknown size are walked element by element, each of which must fit.
 */
export async function matroskaProblem (reader: FileWindow): Promise<string | null> {
  let position = 0
  let segment = false
  while (position < reader.size) {
    const element = await ebmlElement(reader, position)
    if (typeof element === 'string') return element
    if (element.size === null) {
      if (element.id !== EBML_SEGMENT && element.id !== EBML_CLUSTER) return `an element of unknown size at byte ${position} that must have one`
      segment ||= element.id === EBML_SEGMENT
      position = element.dataStart // its children follow
      continue
    }
    if (element.dataStart + element.size > reader.size) return `an element at byte ${position} runs past the end of the file`
    // a segment of known size that fits holds all of the file's media; what follows it is no concern
    if (element.id === EBML_SEGMENT) return null
    position = element.dataStart + element.size
  }
  return segment ? null : 'it has no segment'
}

/**
 * Every Ogg page (27-byte header, segment table, body) lies within the file,
 * one after the other to its end, and the last one ends its stream (a file
 * cut between two pages has no end-of-stream page).
 */
export async function oggProblem (reader: FileWindow): Promise<string | null> {
  let position = 0
  let ended = false
  while (position < reader.size) {
    const header = await reader.bytes(position, 27)
    if (header === null) return 'it ends inside a page header'
    if (header.toString('latin1', 0, 4) !== 'OggS') return `no page starts at byte ${position}`
    const table = await reader.bytes(position + 27, header[26] as number)
    if (table === null) return 'it ends inside a page header'
    const end = position + 27 + table.length + table.reduce((sum, lacing) => sum + lacing, 0)
    if (end > reader.size) return 'its last page runs past the end of the file'
    ended = ((header[5] as number) & 0x04) !== 0
    position = end
  }
  return ended ? null : 'its last page does not end the stream'
}
