import type { FileWindow } from './file-window.js'

// A directory with more entries, or a strip table larger than this, is not
// plausible; refusing them keeps a crafted file from costing memory.
const MAX_TIFF_ENTRIES = 4096
const MAX_TABLE_BYTES = 4 * 1024 * 1024

/** The first image file directory of a TIFF or BigTIFF, as it lies in the file. */
export interface TiffDirectory {
  littleEndian: boolean
  /** BigTIFF: 64-bit offsets and counts */
  big: boolean
  /** the file header (8 or 16 bytes) */
  header: Buffer
  /** the entry count as stored (2 or 8 bytes) */
  countBytes: Buffer
  /** the entries (12 or 20 bytes each) */
  entries: Buffer
  /** where the offset of the next directory (4 or 8 bytes) must follow the entries */
  nextAt: number
}

/** The header and the first directory, or null when either lies (partly) outside the file. */
export async function readTiffDirectory (reader: FileWindow): Promise<TiffDirectory | null> {
  const start = await reader.bytes(0, 8)
  if (start === null) return null
  const littleEndian = start[0] === 0x49
  const big = (littleEndian ? start.readUInt16LE(2) : start.readUInt16BE(2)) === 43
  const header = await reader.bytes(0, big ? 16 : 8)
  if (header === null) return null
  const directoryOffset = big ? readU64(header, 8, littleEndian) : (littleEndian ? header.readUInt32LE(4) : header.readUInt32BE(4))
  const countBytes = await reader.bytes(directoryOffset, big ? 8 : 2)
  if (countBytes === null) return null
  const count = big ? readU64(countBytes, 0, littleEndian) : (littleEndian ? countBytes.readUInt16LE(0) : countBytes.readUInt16BE(0))
  if (count === 0 || count > MAX_TIFF_ENTRIES) return null
  const entriesAt = directoryOffset + countBytes.length
  const entries = await reader.bytes(entriesAt, count * (big ? 20 : 12))
  if (entries === null) return null
  return { littleEndian, big, header, countBytes, entries, nextAt: entriesAt + entries.length }
}

// Bytes of one value of each field type (BYTE, ASCII, SHORT, LONG, RATIONAL, …, BigTIFF's LONG8, SLONG8, IFD8)
const TYPE_BYTES: Record<number, number> = { 1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8 }
// SHORT, LONG and LONG8: the types an offset or byte count may have
const NUMBER_TYPES = new Set([3, 4, 16])

interface TiffEntry {
  tag: number
  type: number
  count: number
  /** where the values are: inside the entry when they fit there, else where it points */
  valuesAt: number | null
  /** the entry's value field, for values that fit in it */
  inline: Buffer
}

function * tiffEntries (directory: TiffDirectory): Generator<TiffEntry> {
  const { littleEndian, big, entries } = directory
  const entryLength = big ? 20 : 12
  const fieldLength = big ? 8 : 4
  for (let at = 0; at + entryLength <= entries.length; at += entryLength) {
    const tag = littleEndian ? entries.readUInt16LE(at) : entries.readUInt16BE(at)
    const type = littleEndian ? entries.readUInt16LE(at + 2) : entries.readUInt16BE(at + 2)
    const count = big ? readU64(entries, at + 4, littleEndian) : (littleEndian ? entries.readUInt32LE(at + 4) : entries.readUInt32BE(at + 4))
    const inline = entries.subarray(at + entryLength - fieldLength, at + entryLength)
    const bytes = count * (TYPE_BYTES[type] ?? 0)
    const valuesAt = bytes <= fieldLength ? null : big ? readU64(inline, 0, littleEndian) : (littleEndian ? inline.readUInt32LE(0) : inline.readUInt32BE(0))
    yield { tag, type, count, valuesAt, inline }
  }
}

function readU64 (bytes: Buffer, at: number, littleEndian: boolean): number {
  return Number(littleEndian ? bytes.readBigUInt64LE(at) : bytes.readBigUInt64BE(at))
}

/** The first tag whose values (of a known type, stored outside its entry) do not lie within the file. */
export function tiffValueOutside (reader: FileWindow, directory: TiffDirectory): number | null {
  for (const entry of tiffEntries(directory)) {
    const width = TYPE_BYTES[entry.type]
    if (width !== undefined && entry.valuesAt !== null && entry.valuesAt + entry.count * width > reader.size) return entry.tag
  }
  return null
}

/**
 * The numbers of one tag (e.g. StripOffsets), read from the entry or from
 * where it points; undefined when the directory has no such tag, null when
 * its values cannot be read (an unexpected type, or outside the file).
 */
export async function tiffNumbers (reader: FileWindow, directory: TiffDirectory, tag: number): Promise<number[] | null | undefined> {
  const { littleEndian } = directory
  for (const entry of tiffEntries(directory)) {
    if (entry.tag !== tag) continue
    const width = TYPE_BYTES[entry.type] as number
    if (!NUMBER_TYPES.has(entry.type) || entry.count * width > MAX_TABLE_BYTES) return null
    const table = entry.valuesAt === null ? entry.inline : await reader.bytes(entry.valuesAt, entry.count * width)
    if (table === null) return null
    const read = width === 2
      ? (at: number) => littleEndian ? table.readUInt16LE(at) : table.readUInt16BE(at)
      : width === 4
        ? (at: number) => littleEndian ? table.readUInt32LE(at) : table.readUInt32BE(at)
        : (at: number) => readU64(table, at, littleEndian)
    return Array.from({ length: entry.count }, (_, i) => read(i * width))
  }
  return undefined
}
