import t, { type Test } from 'tap'
import { createHash } from 'node:crypto'
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import yazl from 'yazl'
import { probeMediaFile, type MediaProbe } from '../../../services/storage/probe.js'
import { brokenFixtures, DURATION_TOLERANCE_SECONDS, mediaFixtures, type MediaFixture } from '../../fixtures/media.js'

const MiB = 1024 * 1024

async function tempDir (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'runstore-probe-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

/** Writes pieces at given offsets; the gaps stay holes, so "large" files cost no disk or time. */
async function writeSparse (path: string, pieces: Array<[number, Buffer]>, size?: number): Promise<void> {
  const handle = await open(path, 'w')
  try {
    for (const [position, bytes] of pieces) await handle.write(bytes, 0, bytes.length, position)
    if (size !== undefined) await handle.truncate(size)
  } finally {
    await handle.close()
  }
}

/** The same pseudo-random bytes on every run, so the test cannot flake on a lucky magic number. */
function noise (seed: string, length: number): Buffer {
  const blocks: Buffer[] = []
  for (let i = 0; blocks.length * 32 < length; i++) blocks.push(createHash('sha256').update(`${seed}:${i}`).digest())
  return Buffer.concat(blocks).subarray(0, length)
}

function assertProbe (t: Test, probe: MediaProbe, expected: MediaFixture): void {
  const { file: _file, duration_seconds: duration, ...exact } = expected
  const { duration_seconds: probed, ...rest } = probe
  t.strictSame(rest, exact)
  if (duration === null) {
    t.equal(probed, null, 'no duration')
  } else {
    t.type(probed, 'number')
    t.ok(Math.abs((probed as number) - duration) <= DURATION_TOLERANCE_SECONDS, `duration ${String(probed)} is about ${duration}`)
    t.equal(probed, Math.round((probed as number) * 1000) / 1000, 'rounded to milliseconds')
  }
}

const unsupported = (message: RegExp): { code: string, statusCode: number, message: RegExp } => ({ code: 'UNSUPPORTED_MEDIA_TYPE', statusCode: 415, message })
const corrupt = (message: RegExp): { code: string, statusCode: number, message: RegExp } => ({ code: 'MEDIA_CORRUPT', statusCode: 422, message })

t.test('every fixture is probed from its bytes, with or without the head handed in', async (t) => {
  for (const [name, fixture] of Object.entries(mediaFixtures)) {
    t.test(name, async (t) => {
      const probe = await probeMediaFile(fixture.file)
      assertProbe(t, probe, fixture)
      t.strictSame(await probeMediaFile(fixture.file, { head: await readFile(fixture.file) }), probe, 'same answer from a head that is the whole file')
      t.strictSame(await probeMediaFile(fixture.file, { head: (await readFile(fixture.file)).subarray(0, 64) }), probe, 'a head too short to use is read again')
    })
  }
})

t.test('the file name never decides the type', async (t) => {
  const dir = await tempDir(t)
  const jpegAsPng = join(dir, 'x.png')
  await writeFile(jpegAsPng, await readFile(mediaFixtures.jpeg.file))
  assertProbe(t, await probeMediaFile(jpegAsPng), mediaFixtures.jpeg)

  const videoAsMp3 = join(dir, 'song.mp3')
  await writeFile(videoAsMp3, await readFile(mediaFixtures.mp4.file))
  assertProbe(t, await probeMediaFile(videoAsMp3), mediaFixtures.mp4)

  await t.rejects(probeMediaFile(brokenFixtures.textAsPng.file), unsupported(/not an image, audio, video or 3D model/))
})

t.test('containers are typed by their tracks, not by their brand', async (t) => {
  // brand isom and a WebM doctype, both usually video, but only an audio track inside
  t.equal((await probeMediaFile(mediaFixtures.audioOnlyMp4.file)).media_type, 'audio')
  t.equal((await probeMediaFile(mediaFixtures.audioOnlyWebm.file)).media_type, 'audio')
  // Matroska with video and audio is video
  t.equal((await probeMediaFile(mediaFixtures.mkv.file)).media_type, 'video')
  await t.rejects(probeMediaFile(brokenFixtures.theoraOgv.file), unsupported(/Ogg video is not accepted/))

  const dir = await tempDir(t)
  const empty = join(dir, 'empty.mp4')
  const ftyp = Buffer.from('00000018667479706973736f0000020069736f6d69736f32', 'hex') // ftyp isom, minor 512, isom iso2
  const moov = Buffer.from('000000086d6f6f76', 'hex') // whole, but it lists no track
  const mdat = Buffer.from('000000086d646174', 'hex')
  await writeFile(empty, Buffer.concat([ftyp, moov, mdat]))
  await t.rejects(probeMediaFile(empty), unsupported(/mp4 container holds no audio or video track/))
})

t.test('a PNG cut inside its IHDR has no size to read', async (t) => {
  // the signature still says PNG, but there is no size to read
  const dir = await tempDir(t)
  const cut = join(dir, 'cut.png')
  await writeFile(cut, (await readFile(mediaFixtures.png.file)).subarray(0, 20))
  await t.rejects(probeMediaFile(cut), corrupt(/png file is truncated or corrupt: it has no readable size/))
  // the same 20 bytes as a slice of a buffer that goes on with the rest of the PNG
  await t.rejects(probeMediaFile(cut, { head: (await readFile(mediaFixtures.png.file)).subarray(0, 20) }), corrupt(/it has no readable size/),
    'nothing is read past the end of the head')
})

t.test('bytes that are no accepted media are refused with a 415', async (t) => {
  const dir = await tempDir(t)
  const write = async (name: string, bytes: Buffer): Promise<string> => {
    const path = join(dir, name)
    await writeFile(path, bytes)
    return path
  }

  await t.rejects(probeMediaFile(await write('empty.png', Buffer.alloc(0))), unsupported(/the file is empty/))
  await t.rejects(probeMediaFile(await write('noise.bin', noise('runstore', 10_000))), unsupported(/not an image, audio, video or 3D model/))
  // an MPEG frame sync word, then noise: detected as mp3, but no frames follow
  const syncThenNoise = Buffer.concat([Buffer.from([0xff, 0xfb, 0x90, 0x64]), noise('mp3', 10_000)])
  await t.rejects(probeMediaFile(await write('noise.mp3', syncThenNoise)), unsupported(/no readable mp3 audio stream/))
  const flacMagicThenNoise = Buffer.concat([Buffer.from('fLaC'), noise('flac', 40)])
  await t.rejects(probeMediaFile(await write('noise.flac', flacMagicThenNoise)), corrupt(/flac file is truncated or corrupt: it has no readable audio stream/),
    'real magic bytes followed by junk: a broken file of that format')

  const zip = new yazl.ZipFile()
  zip.addBuffer(await readFile(mediaFixtures.png.file), 'image.png')
  zip.end()
  const chunks: Buffer[] = []
  for await (const chunk of zip.outputStream) chunks.push(chunk as Buffer)
  await t.rejects(probeMediaFile(await write('images.png', Buffer.concat(chunks))), unsupported(/zip \(application\/zip\) is not an accepted media format/))

  const glb = await readFile(mediaFixtures.glb.file)
  const glbVersion1 = Buffer.from(glb)
  glbVersion1.writeUInt32LE(1, 4)
  await t.rejects(probeMediaFile(await write('old.glb', glbVersion1)), unsupported(/not an image, audio, video or 3D model/), 'glTF 1.0 binary')
  const glbBinFirst = Buffer.from(glb)
  glbBinFirst.write('BIN\0', 16, 'latin1')
  await t.rejects(probeMediaFile(await write('bin-first.glb', glbBinFirst)), unsupported(/GLB header is not followed by a JSON chunk/))

  await t.rejects(probeMediaFile(join(dir, 'missing.png')), { code: 'ENOENT' }, 'a missing file is no 415')
})

t.test('glTF JSON is recognised by parsing it, other JSON is not a model', async (t) => {
  const dir = await tempDir(t)
  const write = async (name: string, text: string): Promise<string> => {
    const path = join(dir, name)
    await writeFile(path, text)
    return path
  }
  const gltf = JSON.parse(await readFile(mediaFixtures.gltf.file, 'utf8')) as Record<string, unknown>

  assertProbe(t, await probeMediaFile(await write('bom.gltf', '\uFEFF' + JSON.stringify(gltf))), mediaFixtures.gltf)
  // larger than any head: the whole text is read from the file
  const large = await write('large.gltf', JSON.stringify({ ...gltf, extras: { note: 'x'.repeat(200_000) } }))
  assertProbe(t, await probeMediaFile(large, { head: (await readFile(large)).subarray(0, 64 * 1024) }), mediaFixtures.gltf)

  await t.rejects(probeMediaFile(await write('scene.gltf', '{"scenes": []}')), unsupported(/no asset\.version/))
  await t.rejects(probeMediaFile(await write('broken.gltf', '{"asset": {"version": "2.0"')), unsupported(/not valid JSON/))

  const huge = join(dir, 'huge.gltf')
  await writeSparse(huge, [[0, Buffer.from('{"asset": {"version": "2.0"}, "extras": "')]], 33 * MiB)
  await t.rejects(probeMediaFile(huge), unsupported(/send it as GLB/))
})

/** An APP1 EXIF segment that holds nothing but an orientation. */
function exifOrientation (orientation: number): Buffer {
  const tiff = Buffer.alloc(26)
  tiff.write('MM\0*', 0, 'latin1')
  tiff.writeUInt32BE(8, 4) // first directory right after the header
  tiff.writeUInt16BE(1, 8) // one entry
  tiff.writeUInt16BE(0x0112, 10) // Orientation
  tiff.writeUInt16BE(3, 12) // SHORT
  tiff.writeUInt32BE(1, 14)
  tiff.writeUInt16BE(orientation, 18)
  return jpegSegment(0xe1, Buffer.concat([Buffer.from('Exif\0\0', 'latin1'), tiff]))
}

function jpegSegment (marker: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(4)
  head.writeUInt16BE(0xff00 | marker, 0)
  head.writeUInt16BE(payload.length + 2, 2)
  return Buffer.concat([head, payload])
}

t.test('JPEG size is the displayed size, wherever the frame header sits', async (t) => {
  const dir = await tempDir(t)
  const jpeg = await readFile(mediaFixtures.jpeg.file)
  const withSegments = (...segments: Buffer[]): Buffer => Buffer.concat([jpeg.subarray(0, 2), ...segments, jpeg.subarray(2)])

  const turned = join(dir, 'turned.jpg')
  await writeFile(turned, withSegments(exifOrientation(6)))
  t.match(await probeMediaFile(turned), { format: 'jpg', width: 60, height: 80 }, 'EXIF orientation 6 turns it by 90°')

  const upright = join(dir, 'upright.jpg')
  await writeFile(upright, withSegments(exifOrientation(3)))
  t.match(await probeMediaFile(upright), { width: 80, height: 60 }, 'orientation 3 (180°) keeps the size')

  // 40 maximal APP15 segments (2.5 MB, like big ICC or XMP blocks) push the
  // frame header far past any head; fill bytes between markers are legal
  const padding = Array.from({ length: 40 }, (_, i) => jpegSegment(0xef, noise(`app15-${i}`, 65_533)))
  const deep = join(dir, 'deep.jpg')
  // (plus a stand-alone TEM marker, and a fill byte before the next marker)
  const deepBytes = withSegments(exifOrientation(8), ...padding, Buffer.from([0xff, 0x01, 0xff]))
  await writeFile(deep, deepBytes)
  t.ok(deepBytes.length - jpeg.length > 2 * MiB, 'the frame header is beyond 2 MiB')
  t.match(await probeMediaFile(deep, { head: deepBytes.subarray(0, 64 * 1024) }), { format: 'jpg', width: 60, height: 80 })
  t.match(await probeMediaFile(deep), { format: 'jpg', width: 60, height: 80 })

  // the segment chain breaks before any frame header
  const broken = join(dir, 'broken.jpg')
  await writeFile(broken, Buffer.concat([jpeg.subarray(0, 2), ...padding.slice(0, 2), Buffer.from('garbage!')]))
  await t.rejects(probeMediaFile(broken), corrupt(/jpg file is truncated or corrupt: it has no readable size/))
  const scanFirst = join(dir, 'scan-first.jpg')
  await writeFile(scanFirst, Buffer.concat([jpeg.subarray(0, 2), ...padding.slice(0, 2), jpegSegment(0xda, Buffer.alloc(10))]))
  await t.rejects(probeMediaFile(scanFirst), corrupt(/jpg file is truncated or corrupt: it has no readable size/))
  const cutInSegment = join(dir, 'cut.jpg')
  await writeFile(cutInSegment, Buffer.concat([jpeg.subarray(0, 2), ...padding.slice(0, 2), jpegSegment(0xc0, Buffer.alloc(15)).subarray(0, 10)]))
  await t.rejects(probeMediaFile(cutInSegment), corrupt(/jpg file is truncated or corrupt: it has no readable size/))
})

t.test('a TIFF whose directory sits behind 20 MB of pixels is measured without reading them', async (t) => {
  const dir = await tempDir(t)
  const gap = 20 * MiB
  for (const littleEndian of [true, false]) {
    for (const big of [false, true]) {
      const u16 = (b: Buffer, v: number, at: number): number => littleEndian ? b.writeUInt16LE(v, at) : b.writeUInt16BE(v, at)
      const u32 = (b: Buffer, v: number, at: number): number => littleEndian ? b.writeUInt32LE(v, at) : b.writeUInt32BE(v, at)
      const u64 = (b: Buffer, v: number, at: number): number => littleEndian ? b.writeBigUInt64LE(BigInt(v), at) : b.writeBigUInt64BE(BigInt(v), at)
      const headerLength = big ? 16 : 8
      const directoryAt = headerLength + gap
      const header = Buffer.alloc(headerLength)
      header.write(littleEndian ? 'II' : 'MM', 0, 'latin1')
      u16(header, big ? 43 : 42, 2)
      if (big) {
        u16(header, 8, 4)
        u64(header, directoryAt, 8)
      } else {
        u32(header, directoryAt, 4)
      }
      const entryLength = big ? 20 : 12
      const countLength = big ? 8 : 2
      // width SHORT, height LONG, and one strip (LONG8 in a BigTIFF): the 20 MB of pixels between header and directory
      const long = big ? 16 : 4
      const entries: Array<[number, number, number]> = [[256, 3, 3000], [257, 4, 2000], [273, long, headerLength], [279, long, gap]]
      const directory = Buffer.alloc(countLength + entries.length * entryLength + (big ? 8 : 4))
      if (big) u64(directory, entries.length, 0)
      else u16(directory, entries.length, 0)
      entries.forEach(([tag, type, value], i) => {
        const at = countLength + i * entryLength
        u16(directory, tag, at)
        u16(directory, type, at + 2)
        if (big) u64(directory, 1, at + 4)
        else u32(directory, 1, at + 4)
        const valueAt = at + (big ? 12 : 8)
        if (type === 3) u16(directory, value, valueAt)
        else if (type === 16) u64(directory, value, valueAt)
        else u32(directory, value, valueAt)
      })
      const path = join(dir, `${littleEndian ? 'le' : 'be'}-${big ? 'bigtiff' : 'tiff'}.tif`)
      await writeSparse(path, [[0, header], [directoryAt, directory]])
      t.strictSame(await probeMediaFile(path), {
        media_type: 'image', format: 'tiff', mime_type: 'image/tiff', extension: 'tiff', width: 3000, height: 2000, duration_seconds: null
      }, path)
    }
  }

  const cut = join(dir, 'cut.tif')
  const header = Buffer.from('49492a00', 'hex')
  const offset = Buffer.alloc(4)
  offset.writeUInt32LE(gap, 0)
  await writeSparse(cut, [[0, Buffer.concat([header, offset])]], gap + 1)
  // file-type already gives up on it
  await t.rejects(probeMediaFile(cut), unsupported(/not an image, audio, video or 3D model/), 'the directory lies past the end')
  // file-type only checks the directory's first entry; image-size wants both sizes
  const noHeight = join(dir, 'no-height.tif')
  const directory = Buffer.alloc(2 + 12 + 4)
  directory.writeUInt16LE(1, 0)
  directory.writeUInt16LE(256, 2)
  directory.writeUInt16LE(3, 4)
  directory.writeUInt32LE(1, 6)
  directory.writeUInt16LE(3000, 10)
  await writeSparse(noHeight, [[0, Buffer.concat([header, offset])], [gap, directory]])
  await t.rejects(probeMediaFile(noHeight), corrupt(/tiff file is truncated or corrupt: it has no readable size/))
})

t.test('an AVIF with its meta box behind a large box is measured from the boxes that describe it', async (t) => {
  const dir = await tempDir(t)
  const avif = await readFile(mediaFixtures.avif.file)
  const ftypLength = avif.readUInt32BE(0)
  const gap = 12 * MiB
  // a 64-bit sized free box (size field 1, then the real size)
  const free = Buffer.alloc(16)
  free.writeUInt32BE(1, 0)
  free.write('free', 4, 'latin1')
  free.writeBigUInt64BE(BigInt(16 + gap), 8)
  const path = join(dir, 'spacious.avif')
  await writeSparse(path, [[0, avif.subarray(0, ftypLength)], [ftypLength, free], [ftypLength + 16 + gap, avif.subarray(ftypLength)]])
  assertProbe(t, await probeMediaFile(path), { ...mediaFixtures.avif, file: path })

  const noMeta = join(dir, 'no-meta.avif')
  await writeSparse(noMeta, [[0, avif.subarray(0, ftypLength)], [ftypLength, free]], ftypLength + 16 + gap)
  await t.rejects(probeMediaFile(noMeta), corrupt(/avif file is truncated or corrupt: it has no readable size/))
  const cutLargeSize = join(dir, 'cut-large-size.avif')
  await writeSparse(cutLargeSize, [[0, avif.subarray(0, ftypLength)], [ftypLength, free.subarray(0, 8)]])
  await t.rejects(probeMediaFile(cutLargeSize), corrupt(/it has no readable size/), 'a 64-bit size that is cut off')
  const toTheEnd = join(dir, 'to-the-end.avif')
  await writeSparse(toTheEnd, [[0, avif.subarray(0, ftypLength)], [ftypLength, Buffer.from('0000000066726565', 'hex')]], 2 * MiB)
  await t.rejects(probeMediaFile(toTheEnd), corrupt(/it has no readable size/), 'a last box that runs to the end of the file, and no meta')
})

t.test('a 21 MB WAV is probed from its header', async (t) => {
  const dir = await tempDir(t)
  const rate = 48_000
  const channels = 2
  const seconds = 110
  const dataBytes = rate * channels * 2 * seconds
  const header = Buffer.alloc(44)
  header.write('RIFF', 0, 'latin1')
  header.writeUInt32LE(36 + dataBytes, 4)
  header.write('WAVEfmt ', 8, 'latin1')
  header.writeUInt32LE(16, 16)
  header.writeUInt16LE(1, 20) // PCM
  header.writeUInt16LE(channels, 22)
  header.writeUInt32LE(rate, 24)
  header.writeUInt32LE(rate * channels * 2, 28)
  header.writeUInt16LE(channels * 2, 32)
  header.writeUInt16LE(16, 34)
  header.write('data', 36, 'latin1')
  header.writeUInt32LE(dataBytes, 40)
  const path = join(dir, 'long.wav')
  await writeSparse(path, [[0, header]], 44 + dataBytes)
  t.strictSame(await probeMediaFile(path), {
    media_type: 'audio', format: 'wav', mime_type: 'audio/wav', extension: 'wav', width: null, height: null, duration_seconds: seconds
  })
})

t.test('an MP4 whose moov box sits behind 30 MB is probed by seeking, not by reading it all', async (t) => {
  const dir = await tempDir(t)
  const mp4 = await readFile(mediaFixtures.rotatedMp4.file) // written without faststart: moov last
  let moovAt = 0
  while (mp4.toString('latin1', moovAt + 4, moovAt + 8) !== 'moov') moovAt += mp4.readUInt32BE(moovAt)
  const gap = 30 * MiB
  const free = Buffer.alloc(8)
  free.writeUInt32BE(8 + gap, 0)
  free.write('free', 4, 'latin1')
  const path = join(dir, 'long.mp4')
  await writeSparse(path, [[0, mp4.subarray(0, moovAt)], [moovAt, free], [moovAt + 8 + gap, mp4.subarray(moovAt)]])
  const head = Buffer.alloc(64 * 1024)
  const handle = await open(path, 'r')
  await handle.read(head, 0, head.length, 0)
  await handle.close()
  assertProbe(t, await probeMediaFile(path, { head }), { ...mediaFixtures.rotatedMp4, file: path })
})

t.test('parallel probes share the one MediaInfo instance without mixing results', async (t) => {
  const videos = [mediaFixtures.mp4, mediaFixtures.webm, mediaFixtures.mov, mediaFixtures.mkv, mediaFixtures.rotatedMp4, mediaFixtures.m4a]
  const probes = await Promise.all(videos.map(async (fixture) => await probeMediaFile(fixture.file)))
  probes.forEach((probe, i) => { assertProbe(t, probe, videos[i] as MediaFixture) })
})

t.test('a container the analyser cannot read is unsupported; a failing disk is not', async (t) => {
  const failWith = (err: Error) => ({ analyzeMediaFile: async () => { throw err } })
  const ioError = Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO', syscall: 'read' })

  const broken = await t.mockImport<typeof import('../../../services/storage/probe.js')>('../../../services/storage/probe.js', {
    '../../../services/storage/probe-mediainfo.js': failWith(new Error('memory access out of bounds'))
  })
  await t.rejects(broken.probeMediaFile(mediaFixtures.mp4.file), corrupt(/mp4 file is truncated or corrupt: the container could not be read: memory access out of bounds/))

  const failingDisk = await t.mockImport<typeof import('../../../services/storage/probe.js')>('../../../services/storage/probe.js', {
    '../../../services/storage/probe-mediainfo.js': failWith(ioError)
  })
  await t.rejects(failingDisk.probeMediaFile(mediaFixtures.mp4.file), { code: 'EIO' })
})

t.test('audio music-metadata cannot parse is unsupported; a failing disk is not', async (t) => {
  const failWith = (err: Error) => ({ parseFile: async () => { throw err } })
  const broken = await t.mockImport<typeof import('../../../services/storage/probe.js')>('../../../services/storage/probe.js', {
    'music-metadata': failWith(new Error('FourCC contains invalid characters'))
  })
  await t.rejects(broken.probeMediaFile(mediaFixtures.wav.file), corrupt(/wav file is truncated or corrupt: the audio could not be read: FourCC contains invalid characters/))

  const failingDisk = await t.mockImport<typeof import('../../../services/storage/probe.js')>('../../../services/storage/probe.js', {
    'music-metadata': failWith(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO', syscall: 'read' }))
  })
  await t.rejects(failingDisk.probeMediaFile(mediaFixtures.flac.file), { code: 'EIO' })
})
