import t, { type Test } from 'tap'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BuiltinBackend } from '../../../services/backends/builtin/backend.js'
import { probeMediaFile, type ProbeOptions } from '../../../services/storage/probe.js'
import { brokenFixtures, mediaFixtures } from '../../fixtures/media.js'
import { forgedPng, PNG_SIGNATURE, pngChunk, pngHeader } from '../../forged-png.js'
import { collectGenerated } from '../../generated-media.js'

// A file is stored only when it is whole: these tests cut and bend real
// media (the committed fixtures, the builtin generator's output) and check
// what the probe says of the result.

type Expected = { code: string, statusCode: number, message: RegExp }
const corrupt = (message: RegExp): Expected => ({ code: 'MEDIA_CORRUPT', statusCode: 422, message })
const tooLarge = (message: RegExp): Expected => ({ code: 'IMAGE_TOO_LARGE', statusCode: 422, message })

/** Probes bytes written to a new file. */
async function prober (t: Test): Promise<(bytes: Buffer, options?: ProbeOptions) => ReturnType<typeof probeMediaFile>> {
  const dir = await mkdtemp(join(tmpdir(), 'runstore-integrity-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  let files = 0
  return async (bytes, options) => {
    const path = join(dir, `file-${files++}`)
    await writeFile(path, bytes)
    return await probeMediaFile(path, options)
  }
}

async function generated (mediaType: 'image' | 'audio'): Promise<Buffer> {
  const request = { run_id: '0193f1e2-7c4a-7b9e-8d2f-4c1a2b3c4d5e', prompt: 'a blue dragon above the sea', seed: 7, width: 640, height: 480, params: { media_type: mediaType, duration_seconds: 1 } }
  const [first] = await collectGenerated(new BuiltinBackend(), request)
  return first!.bytes
}

t.test('the broken and forged images of issue 9 are refused, not stored with full dimensions', async (t) => {
  const probe = await prober(t)
  const png = await readFile(mediaFixtures.png.file)
  const jpeg = await readFile(mediaFixtures.jpeg.file)
  const painted = await generated('image')
  t.match(await probe(painted), { format: 'png', width: 640, height: 480 }, 'the generated picture is whole')

  await t.rejects(probe(png.subarray(0, 60)), corrupt(/^the png file is truncated or corrupt: /), 'a PNG cut to 60 bytes')
  await t.rejects(probe(png.subarray(0, png.length >> 1)), corrupt(/png file is truncated or corrupt: its "IDAT" chunk runs past the end of the file/), 'a PNG cut in half')
  await t.rejects(probe(painted.subarray(0, painted.length >> 1)), corrupt(/"IDAT" chunk runs past the end of the file/), 'a generated PNG cut in half')
  await t.rejects(probe(await readFile(brokenFixtures.truncatedPng.file)), corrupt(/png file is truncated or corrupt/), 'image.png cut after 100 bytes')
  await t.rejects(probe(jpeg.subarray(0, jpeg.length >> 1)), corrupt(/jpg file is truncated or corrupt: it ends inside its image data, before the end-of-image marker/), 'a JPEG cut in half')

  const forged = forgedPng()
  t.equal(forged.length, 100)
  await t.rejects(probe(forged, { maxImagePixels: 50_000_000 }), tooLarge(/the image is 100000 × 100000 pixels, more than the limit of 50000000 pixels/))
  await t.rejects(probe(forged), corrupt(/it ends before its IEND chunk/), 'without a limit it is still not whole')
  // the same claim in a structurally whole file: what a decompression bomb looks like
  const whole = Buffer.concat([forged, pngChunk('IEND', Buffer.alloc(0))])
  await t.rejects(probe(whole, { maxImagePixels: 50_000_000 }), tooLarge(/100000 × 100000/))
})

t.test('every format the probe walks: whole files pass; cut in half or short of their last byte they are refused', async (t) => {
  const probe = await prober(t)
  // MP3, AAC and FLAC are runs of frames without an end mark; glTF is JSON, refused as unparsable
  const unchecked = new Set(['mp3', 'mp3VbrNoHeader', 'aac', 'flac', 'gltf'])
  for (const [name, fixture] of Object.entries(mediaFixtures)) {
    if (unchecked.has(name)) continue
    const bytes = await readFile(fixture.file)
    t.match(await probe(bytes), { format: fixture.format }, `${name} whole`)
    // (half a TIFF has lost the directory file-type looks for: no TIFF at all)
    await t.rejects(probe(bytes.subarray(0, bytes.length >> 1)), { code: name === 'tiff' ? 'UNSUPPORTED_MEDIA_TYPE' : 'MEDIA_CORRUPT' }, `${name} cut in half`)
    await t.rejects(probe(bytes.subarray(0, bytes.length - 1)), { code: 'MEDIA_CORRUPT', statusCode: 422 }, `${name} without its last byte`)
  }
})

t.test('the pixel limit counts width × height and lets an image at the limit pass', async (t) => {
  const probe = await prober(t)
  const png = await readFile(mediaFixtures.png.file) // 64 × 48 = 3072 pixels
  t.match(await probe(png, { maxImagePixels: 3072 }), { width: 64, height: 48 })
  await t.rejects(probe(png, { maxImagePixels: 3071 }), tooLarge(/the image is 64 × 48 pixels, more than the limit of 3071 pixels/))
  const jpeg = await readFile(mediaFixtures.jpeg.file) // 80 × 60
  await t.rejects(probe(jpeg, { maxImagePixels: 4799 }), tooLarge(/80 × 60/))
})

t.test('a PNG is walked chunk by chunk: its IHDR checked, image data required, nothing beyond the file', async (t) => {
  const probe = await prober(t)
  const png = await readFile(mediaFixtures.png.file)
  const damaged = Buffer.from(png)
  damaged[29] = (damaged[29] as number) ^ 0xff // a byte of the IHDR's checksum
  await t.rejects(probe(damaged), corrupt(/its IHDR chunk is damaged/))
  await t.rejects(probe(Buffer.concat([PNG_SIGNATURE, pngHeader(64, 48), pngChunk('IEND', Buffer.alloc(0))])), corrupt(/it has no image data \(IDAT\)/))
  const impossible = Buffer.alloc(8)
  impossible.writeUInt32BE(0x80000000, 0)
  impossible.write('tEXt', 4, 'latin1')
  const iend = png.length - 12
  await t.rejects(probe(Buffer.concat([png.subarray(0, iend), impossible, png.subarray(iend)])), corrupt(/its "tEXt" chunk has an impossible length/))
  const unnamed = Buffer.from(impossible)
  unnamed.writeUInt32BE(0x7fff0000, 0)
  unnamed.write('\u0001\u0002\u0003\u0004', 4, 'latin1')
  await t.rejects(probe(Buffer.concat([png.subarray(0, iend), unnamed])), corrupt(/its unnamed chunk runs past the end of the file/), 'a forged chunk type is not echoed')
  t.match(await probe(Buffer.concat([png, Buffer.from('trailing bytes')])), { format: 'png', width: 64, height: 48 }, 'bytes after IEND are ignored, as viewers do')
})

/** A JPEG's segments up to its first scan: where each starts. */
function jpegMarkers (jpeg: Buffer): Map<number, number> {
  const at = new Map<number, number>()
  for (let position = 2; !at.has(0xda); position += 2 + jpeg.readUInt16BE(position + 2)) at.set(jpeg[position + 1] as number, position)
  return at
}

t.test('a JPEG is walked segment by segment and through its scans to the end-of-image marker', async (t) => {
  const probe = await prober(t)
  const jpeg = await readFile(mediaFixtures.jpeg.file)
  const at = jpegMarkers(jpeg)
  const dht = at.get(0xc4) as number
  const sos = at.get(0xda) as number
  const sosEnd = sos + 2 + jpeg.readUInt16BE(sos + 2)

  // Two scans (as a progressive JPEG has) with a table between them, each
  // longer than the probe's 64 KiB window, holding stuffed 0xFF bytes,
  // restart markers and fill bytes: none of them ends a scan. (The walk
  // does not decode: the scan bytes need not make a picture.)
  const scan = (seed: number): Buffer => {
    const bytes = Buffer.alloc(150_000, seed)
    for (let i = 1_000; i < bytes.length; i += 10_000) bytes.set([0xff, 0x00, 0xff, 0xd0 + (i % 8)], i)
    return bytes
  }
  const headers = jpeg.subarray(0, sosEnd)
  const table = jpeg.subarray(dht, dht + 2 + jpeg.readUInt16BE(dht + 2))
  const sosSegment = jpeg.subarray(sos, sosEnd)
  const progressive = Buffer.concat([headers, scan(1), Buffer.from([0xff, 0xff]), table, sosSegment, scan(2), Buffer.from([0xff, 0xff, 0xd9])])
  t.match(await probe(progressive), { format: 'jpg', width: 80, height: 60 })
  await t.rejects(probe(progressive.subarray(0, 200_000)), corrupt(/it ends inside its image data, before the end-of-image marker/), 'cut in the second scan')
  await t.rejects(probe(progressive.subarray(0, progressive.length - 2)), corrupt(/it ends inside its image data/), 'cut after a fill byte')
  await t.rejects(probe(progressive.subarray(0, progressive.length - 1)), corrupt(/it ends inside its image data/), 'cut between 0xFF and D9')

  // the frame header (with the size) comes first, then what is broken
  const sof = at.get(0xc0) as number
  const sofEnd = sof + 2 + jpeg.readUInt16BE(sof + 2)
  await t.rejects(probe(Buffer.concat([jpeg.subarray(0, sofEnd), Buffer.from('garbage!')])), corrupt(/no marker at byte 283/), 'junk after the frame header')
  await t.rejects(probe(jpeg.subarray(0, sofEnd + 3)), corrupt(/it ends before its end-of-image marker/), 'cut inside a segment length')
  await t.rejects(probe(jpeg.subarray(0, sofEnd + 10)), corrupt(/a segment runs past the end of the file/), 'cut inside a segment')
  const standalone = Buffer.concat([jpeg.subarray(0, sofEnd), Buffer.from([0xff, 0x01, 0xff, 0xd0]), jpeg.subarray(sofEnd)])
  t.match(await probe(standalone), { width: 80, height: 60 }, 'markers without a length between segments')
})

t.test('a GIF is walked block by block to its trailer', async (t) => {
  const probe = await prober(t)
  const gif = await readFile(mediaFixtures.gif.file)
  const screen = gif.subarray(0, 13)
  const noColours = Buffer.from(screen)
  noColours[10] = 0 // no global colour table
  await t.rejects(probe(Buffer.concat([noColours, Buffer.from([0x3b])])), corrupt(/it holds no image/))
  await t.rejects(probe(Buffer.concat([gif.subarray(0, gif.length - 1), Buffer.from([0x99])])), corrupt(/no block starts at byte/))
  await t.rejects(probe(Buffer.concat([noColours, Buffer.from([0x2c, 0, 0, 0])])), corrupt(/it ends before its trailer/), 'cut inside an image descriptor')
  await t.rejects(probe(gif.subarray(0, 12)), corrupt(/it ends inside its header/))
})

t.test('BMP, WebP and GLB are measured against the sizes they declare', async (t) => {
  const probe = await prober(t)
  const bmp = await readFile(mediaFixtures.bmp.file)
  const rle = Buffer.from(bmp)
  rle.writeUInt32LE(1, 30) // BI_RLE8: the pixel bytes are what the header's image size says
  rle.writeUInt32LE(bmp.length - 54, 34)
  t.match(await probe(rle), { format: 'bmp' })
  rle.writeUInt32LE(bmp.length, 34)
  await t.rejects(probe(rle), corrupt(/bmp file is truncated or corrupt: its pixel data runs past the end of the file/))
  await t.rejects(probe(bmp.subarray(0, 30)), corrupt(/it ends inside its header/))

  const webp = await readFile(mediaFixtures.webp.file)
  const longChunk = Buffer.from(webp)
  longChunk.writeUInt32LE(webp.readUInt32LE(16) + 100, 16)
  await t.rejects(probe(longChunk), corrupt(/webp file is truncated or corrupt: its "VP8" chunk runs past the end of the file/), 'the RIFF size fits, the chunk does not')

  const glb = await readFile(mediaFixtures.glb.file)
  const longBin = Buffer.from(glb)
  const binAt = 20 + glb.readUInt32LE(12)
  longBin.writeUInt32LE(glb.readUInt32LE(binAt) + 4, binAt)
  await t.rejects(probe(longBin), corrupt(/glb file is truncated or corrupt: its "BIN" chunk runs past the end of the file/))
})

/** A little-endian TIFF: header, `data` at offset 8, then one directory of `entries` [tag, type, count, value or offset]. */
function tiff (entries: Array<[number, number, number, number]>, data: Buffer, options: { cutNextOffset?: boolean } = {}): Buffer {
  const directoryAt = 8 + data.length
  const header = Buffer.from([0x49, 0x49, 42, 0, 0, 0, 0, 0])
  header.writeUInt32LE(directoryAt, 4)
  const directory = Buffer.alloc(2 + entries.length * 12 + (options.cutNextOffset === true ? 0 : 4))
  directory.writeUInt16LE(entries.length, 0)
  entries.forEach(([tag, type, count, value], i) => {
    directory.writeUInt16LE(tag, 2 + i * 12)
    directory.writeUInt16LE(type, 4 + i * 12)
    directory.writeUInt32LE(count, 6 + i * 12)
    if (type === 3 && count === 1) directory.writeUInt16LE(value, 10 + i * 12)
    else directory.writeUInt32LE(value, 10 + i * 12)
  })
  return Buffer.concat([header, data, directory])
}

t.test('a TIFF: its strips or tiles, and every value its directory points to, lie within the file', async (t) => {
  const probe = await prober(t)
  const size: Array<[number, number, number, number]> = [[256, 3, 1, 4], [257, 3, 1, 2]]
  const pixels = Buffer.alloc(24, 0x80) // 4 × 2 RGB
  t.match(await probe(tiff([...size, [273, 4, 1, 8], [279, 3, 1, 24]], pixels)), { format: 'tiff', width: 4, height: 2 }, 'one strip')
  // two strips: offsets and counts stored behind the pixels, where the entries point
  const tables = Buffer.alloc(16)
  tables.writeUInt32LE(8, 0)
  tables.writeUInt32LE(20, 4)
  tables.writeUInt32LE(12, 8)
  tables.writeUInt32LE(12, 12)
  t.match(await probe(tiff([...size, [273, 4, 2, 32], [279, 4, 2, 40]], Buffer.concat([pixels, tables]))), { width: 4, height: 2 }, 'two strips')
  t.match(await probe(tiff([...size, [322, 3, 1, 4], [323, 3, 1, 2], [324, 4, 1, 8], [325, 4, 1, 24]], pixels)), { width: 4, height: 2 }, 'one tile')

  await t.rejects(probe(tiff([...size, [273, 4, 1, 8], [279, 4, 1, 1000]], pixels)), corrupt(/tiff file is truncated or corrupt: its image data runs past the end of the file/))
  await t.rejects(probe(tiff([...size, [273, 4, 2, 32], [279, 4, 2, 5000]], Buffer.concat([pixels, tables]))), corrupt(/the values of its tag 279 lie past the end of the file/))
  await t.rejects(probe(tiff(size, pixels)), corrupt(/it has no image data \(no strips or tiles\)/))
  await t.rejects(probe(tiff([...size, [273, 4, 1, 8]], pixels)), corrupt(/its strip table cannot be read/), 'offsets without byte counts')
  await t.rejects(probe(tiff([...size, [273, 5, 1, 8], [279, 4, 1, 24]], pixels)), corrupt(/its strip table cannot be read/), 'offsets as fractions')
  await t.rejects(probe(tiff([...size, [282, 5, 1, 1000], [273, 4, 1, 8], [279, 4, 1, 24]], pixels)), corrupt(/the values of its tag 282 lie past the end of the file/), 'a resolution beyond the end')
  await t.rejects(probe(tiff([...size, [273, 4, 1, 8], [279, 3, 1, 24]], pixels, { cutNextOffset: true })), corrupt(/its first directory lies outside the file/))
})

/** Top-level ISO boxes: [type, position, length]. */
function isoBoxes (bytes: Buffer): Array<[string, number, number]> {
  const boxes: Array<[string, number, number]> = []
  for (let position = 0; position < bytes.length; position += bytes.readUInt32BE(position)) boxes.push([bytes.toString('latin1', position + 4, position + 8), position, bytes.readUInt32BE(position)])
  return boxes
}

t.test('MP4, MOV and AVIF: every top-level box fits, and the file still has its index and its media data', async (t) => {
  const probe = await prober(t)
  const mp4 = await readFile(mediaFixtures.mp4.file) // ftyp, moov, free, mdat
  const mov = await readFile(mediaFixtures.mov.file) // moov last
  const avif = await readFile(mediaFixtures.avif.file) // ftyp, meta, mdat
  const start = (bytes: Buffer, type: string): number => isoBoxes(bytes).find(([name]) => name === type)![1]

  await t.rejects(probe(mp4.subarray(0, start(mp4, 'mdat'))), corrupt(/mp4 file is truncated or corrupt: it has no mdat box/), 'cut right before its media data')
  await t.rejects(probe(mov.subarray(0, start(mov, 'moov'))), corrupt(/mov file is truncated or corrupt: it has no moov box/), 'cut right before its index')
  await t.rejects(probe(avif.subarray(0, start(avif, 'mdat'))), corrupt(/avif file is truncated or corrupt: it has no mdat box/))

  const toTheEnd = Buffer.from(mp4)
  toTheEnd.writeUInt32BE(0, start(mp4, 'mdat')) // size 0: the last box runs to the end of the file
  t.match(await probe(toTheEnd), { format: 'mp4', width: 96, height: 64 })
  await t.rejects(probe(Buffer.concat([mp4, Buffer.from([0, 0, 0, 4]), Buffer.from('free')])), corrupt(/its "free" box has an impossible size/))
  await t.rejects(probe(Buffer.concat([mp4, Buffer.from([0, 0, 1])])), corrupt(/it ends inside a box header/))
  const large = Buffer.concat([Buffer.from([0, 0, 0, 1]), Buffer.from('free'), Buffer.alloc(4)]) // the 64-bit size that follows is cut off
  await t.rejects(probe(Buffer.concat([mp4, large])), corrupt(/it ends inside a box header/), 'a 64-bit size that is cut off')
})

// Matroska element ids
const CLUSTER = '1f43b675'
const TRACKS = '1654ae6b'

function vintLength (first: number): number {
  let length = 1
  while (length < 8 && (first & (0x100 >> length)) === 0) length++
  return length
}

/** The element size at `position + id length` set to "unknown", as a live recording writes it. */
function unknownSize (bytes: Buffer, position: number): void {
  const sizeAt = position + vintLength(bytes[position] as number)
  const length = vintLength(bytes[sizeAt] as number)
  bytes[sizeAt] = 0xff >> (length - 1)
  bytes.fill(0xff, sizeAt + 1, sizeAt + length)
}

/** Where the segment and each of its children start (the fixtures' elements all have known sizes). */
function matroskaLayout (bytes: Buffer): { segment: number, children: Array<{ id: string, position: number }> } {
  const element = (position: number): { id: string, dataStart: number, size: number } => {
    const idLength = vintLength(bytes[position] as number)
    const sizeLength = vintLength(bytes[position + idLength] as number)
    let size = (bytes[position + idLength] as number) & (0xff >> sizeLength)
    for (let i = 1; i < sizeLength; i++) size = size * 256 + (bytes[position + idLength + i] as number)
    return { id: bytes.toString('hex', position, position + idLength), dataStart: position + idLength + sizeLength, size }
  }
  const header = element(0)
  const segment = header.dataStart + header.size
  const children: Array<{ id: string, position: number }> = []
  const { dataStart, size } = element(segment)
  for (let position = dataStart; position < dataStart + size;) {
    const child = element(position)
    children.push({ id: child.id, position })
    position = child.dataStart + child.size
  }
  return { segment, children }
}

t.test('WebM and Matroska: the segment fits; a live recording of unknown sizes is walked element by element', async (t) => {
  const probe = await prober(t)
  const webm = await readFile(mediaFixtures.webm.file)
  // what a browser's MediaRecorder writes: segment and clusters of unknown size
  const { segment, children } = matroskaLayout(webm)
  const live = Buffer.from(webm)
  unknownSize(live, segment)
  const clusters = children.filter((child) => child.id === CLUSTER)
  t.ok(clusters.length > 0)
  for (const cluster of clusters) unknownSize(live, cluster.position)
  t.match(await probe(live), { format: 'webm', width: 64, height: 48 }, 'a live recording, whole')
  await t.rejects(probe(live.subarray(0, Math.round(live.length * 0.75))), corrupt(/webm file is truncated or corrupt: an element at byte \d+ runs past the end of the file/))
  await t.rejects(probe(Buffer.concat([live, Buffer.from([0x00])])), corrupt(/no element starts at byte/))
  await t.rejects(probe(Buffer.concat([live, Buffer.from([0xa3, 0x00])])), corrupt(/no element starts at byte/), 'an invalid size')
  await t.rejects(probe(Buffer.concat([live, Buffer.from([0x1f, 0x43])])), corrupt(/it ends inside an element header/))
  await t.rejects(probe(Buffer.concat([live, Buffer.from([0xa3, 0x40])])), corrupt(/it ends inside an element header/))
  const unknownTracks = Buffer.from(live)
  unknownSize(unknownTracks, children.find((child) => child.id === TRACKS)!.position)
  await t.rejects(probe(unknownTracks), corrupt(/an element of unknown size at byte \d+ that must have one/))
  await t.rejects(probe(webm.subarray(0, segment)), corrupt(/it has no segment/), 'the EBML header alone')
})

/** Start of each Ogg page. */
function oggPages (bytes: Buffer): number[] {
  const pages: number[] = []
  for (let position = 0; position < bytes.length;) {
    pages.push(position)
    const segments = bytes[position + 26] as number
    position += 27 + segments + bytes.subarray(position + 27, position + 27 + segments).reduce((sum, lacing) => sum + lacing, 0)
  }
  return pages
}

t.test('Ogg: page after page to the end of the file, the last one ending the stream', async (t) => {
  const probe = await prober(t)
  const opus = await readFile(mediaFixtures.opus.file)
  const pages = oggPages(opus)
  await t.rejects(probe(opus.subarray(0, pages.at(-1))), corrupt(/opus file is truncated or corrupt: its last page does not end the stream/), 'cut right before the last page')
  await t.rejects(probe(Buffer.concat([opus, Buffer.from('junk at the end of the file, 32 b')])), corrupt(/no page starts at byte \d+/))
  await t.rejects(probe(opus.subarray(0, pages.at(-1)! + 27)), corrupt(/it ends inside a page header/), 'cut before a segment table')
  await t.rejects(probe(opus.subarray(0, pages.at(-1)! + 20)), corrupt(/it ends inside a page header/), 'cut inside a page header')
})

t.test('WAV: the data chunk must fit in the file; a stream of unknown length runs to its end', async (t) => {
  const probe = await prober(t)
  const wav = await generated('audio')
  t.match(await probe(wav), { format: 'wav', duration_seconds: 1 }, 'the generated melody is whole')
  await t.rejects(probe(wav.subarray(0, wav.length >> 1)), corrupt(/wav file is truncated or corrupt: its RIFF header declares \d+ bytes, the file has \d+/), 'cut in half')
  const dataAt = wav.indexOf('data', 12, 'latin1')
  const claims = Buffer.from(wav)
  claims.writeUInt32LE(wav.readUInt32LE(dataAt + 4) + 1000, dataAt + 4)
  await t.rejects(probe(claims), corrupt(/its "data" chunk runs past the end of the file/), 'a data chunk that claims more bytes than the file has')
  const noData = Buffer.from(wav.subarray(0, dataAt))
  noData.writeUInt32LE(noData.length - 8, 4)
  await t.rejects(probe(noData), corrupt(/it has no "data" chunk/))

  // written to a pipe: the writer could not go back to fill in the sizes
  const streamed = Buffer.from(wav)
  streamed.writeUInt32LE(0xffffffff, 4)
  streamed.writeUInt32LE(0xffffffff, dataAt + 4)
  t.match(await probe(streamed), { format: 'wav', duration_seconds: 1 })
})
