import { open, type FileHandle } from 'node:fs/promises'
import { fileTypeFromBuffer, fileTypeFromFile } from 'file-type'
import type { Track } from 'mediainfo.js'
import { parseFile, type IFormat } from 'music-metadata'
import { ImageTooLargeError, MediaCorruptError, UnsupportedMediaError } from '../errors.js'
import type { MediaType } from '../../schemas/media.js'
import { glbProblem, isoProblem, matroskaProblem, oggProblem, riffProblem } from './container-structure.js'
import { FileWindow } from './file-window.js'
import { imageProblem } from './image-structure.js'
import { imageDimensions, type ImageFormat } from './probe-image.js'
import { analyzeMediaFile } from './probe-mediainfo.js'

/** What the bytes of a media file are, never what its name claims. */
export interface MediaProbe {
  media_type: MediaType
  /** short format name, e.g. png, jpg, mp3, m4a, mp4, glb */
  format: string
  mime_type: string
  /** file extension without the dot, to name the stored file */
  extension: string
  width: number | null
  height: number | null
  duration_seconds: number | null
}

export interface ProbeOptions {
  /**
   * the file's first bytes if the caller already holds them (at least 4100,
   * or the whole file), so they are not read again
   */
  head?: Buffer
  /** images with more pixels (width × height) are refused; no limit when not given */
  maxImagePixels?: number
}

type Kind = Pick<MediaProbe, 'format' | 'mime_type' | 'extension'>

const IMAGES: Record<string, Kind & { format: ImageFormat }> = {
  png: { format: 'png', mime_type: 'image/png', extension: 'png' },
  // an animated PNG is a valid PNG for every viewer, so it keeps the .png name
  apng: { format: 'apng', mime_type: 'image/apng', extension: 'png' },
  jpg: { format: 'jpg', mime_type: 'image/jpeg', extension: 'jpg' },
  webp: { format: 'webp', mime_type: 'image/webp', extension: 'webp' },
  gif: { format: 'gif', mime_type: 'image/gif', extension: 'gif' },
  avif: { format: 'avif', mime_type: 'image/avif', extension: 'avif' },
  bmp: { format: 'bmp', mime_type: 'image/bmp', extension: 'bmp' },
  tif: { format: 'tiff', mime_type: 'image/tiff', extension: 'tiff' }
}

// Formats that hold audio and nothing else, so the magic bytes settle the type.
const AUDIO: Record<string, Kind> = {
  wav: { format: 'wav', mime_type: 'audio/wav', extension: 'wav' },
  mp3: { format: 'mp3', mime_type: 'audio/mpeg', extension: 'mp3' },
  flac: { format: 'flac', mime_type: 'audio/flac', extension: 'flac' },
  aac: { format: 'aac', mime_type: 'audio/aac', extension: 'aac' }
}

// Detected only by an MPEG frame sync word, which random bytes hit often:
// these count as audio only when frames can actually be read.
const FRAME_SYNC_DETECTED = new Set(['mp3', 'aac'])

type ContainerFamily = 'mp4' | 'matroska' | 'ogg'

// What makes a container whole: an MP4 needs its samples (mdat) and their index (moov).
const CONTAINER_PROBLEMS: Record<ContainerFamily, (reader: FileWindow) => Promise<string | null>> = {
  mp4: async (reader) => await isoProblem(reader, ['moov', 'mdat']),
  matroska: matroskaProblem,
  ogg: oggProblem
}

// Containers that hold video, audio, or both: their tracks decide the type.
const CONTAINERS: Record<string, ContainerFamily> = {
  mp4: 'mp4',
  m4v: 'mp4',
  m4a: 'mp4',
  m4b: 'mp4',
  mov: 'mp4',
  '3gp': 'mp4',
  '3g2': 'mp4',
  webm: 'matroska',
  mkv: 'matroska',
  ogg: 'ogg',
  oga: 'ogg',
  ogv: 'ogg',
  opus: 'ogg',
  spx: 'ogg'
}

const GLB: Kind = { format: 'glb', mime_type: 'model/gltf-binary', extension: 'glb' }
const GLTF: Kind = { format: 'gltf', mime_type: 'model/gltf+json', extension: 'gltf' }

// file-type needs 4100 bytes at most for the formats above; a head that short
// is read again from the file.
const MIN_HEAD_BYTES = 4100
const HEAD_BYTES = 64 * 1024
// A .gltf is JSON and has to be parsed whole to be recognised; larger models
// come as GLB (binary buffers instead of base64 text), which needs no parse.
const MAX_GLTF_JSON_BYTES = 32 * 1024 * 1024

const NOT_MEDIA = 'the bytes are not an image, audio, video or 3D model format that is accepted'

/**
 * Decides type, format, size and duration of a media file from its bytes,
 * and that the file is whole: its structure is walked (headers, chunks,
 * boxes, markers; never a decode) to its end. Reads in windows, so it costs
 * little memory whatever the file size.
 *
 * @throws UnsupportedMediaError when the bytes are no accepted media (415)
 * @throws MediaCorruptError when they start as an accepted format but are cut off or broken (422)
 * @throws ImageTooLargeError when an image has more pixels than `maxImagePixels` (422)
 */
export async function probeMediaFile (filePath: string, options: ProbeOptions = {}): Promise<MediaProbe> {
  const handle = await open(filePath, 'r')
  try {
    const { size } = await handle.stat()
    if (size === 0) throw new UnsupportedMediaError('the file is empty')
    const given = options.head
    const head = given !== undefined && given.length >= Math.min(size, MIN_HEAD_BYTES)
      ? given.subarray(0, size)
      : await readHead(handle, size)
    const reader = new FileWindow(handle, size, head)
    // From a buffer file-type cannot look past it (e.g. past a large ID3 tag,
    // where it would answer mp3 for whatever follows), so a head that is not
    // the whole file is only a shortcut for the other probes.
    const detected = head.length >= size ? await fileTypeFromBuffer(head) : await fileTypeFromFile(filePath)
    if (detected === undefined) return await probeText(handle, size, head)

    const image = IMAGES[detected.ext]
    if (image !== undefined) {
      const dimensions = await imageDimensions(reader, head, image.format)
      if (dimensions === null) throw new MediaCorruptError(image.format, 'it has no readable size')
      const { width, height } = dimensions
      // before the walk: a forged size needs no further reading to be refused
      if (options.maxImagePixels !== undefined && width * height > options.maxImagePixels) {
        throw new ImageTooLargeError(width, height, options.maxImagePixels)
      }
      refuseBroken(image.format, await imageProblem(reader, image.format))
      return { media_type: 'image', ...image, width, height, duration_seconds: null }
    }
    const audio = AUDIO[detected.ext]
    if (audio !== undefined) {
      if (audio.format === 'wav') refuseBroken('wav', await riffProblem(reader, ['fmt ', 'data'], { streamed: true }))
      const stream = await readAudioStream(filePath, audio.format)
      const duration = seconds(stream.duration)
      // A frame sync word is found in random bytes too: without a run of
      // frames they were no audio at all. Real magic bytes followed by junk
      // (no stream header) are a broken file of that format.
      if (FRAME_SYNC_DETECTED.has(audio.format)) {
        if (duration === null) throw new UnsupportedMediaError(`no readable ${audio.format} audio stream`)
      } else if (stream.sampleRate === undefined) {
        throw new MediaCorruptError(audio.format, 'it has no readable audio stream')
      }
      return { media_type: 'audio', ...audio, width: null, height: null, duration_seconds: duration }
    }
    const family = CONTAINERS[detected.ext]
    if (family !== undefined) {
      refuseBroken(detected.ext, await CONTAINER_PROBLEMS[family](reader))
      return await probeContainer(filePath, handle, size, family, detected.ext)
    }
    if (detected.ext === 'glb') {
      const model = probeGlb(head)
      refuseBroken('glb', await glbProblem(reader))
      return model
    }
    throw new UnsupportedMediaError(`${detected.ext} (${detected.mime}) is not an accepted media format`)
  } finally {
    await handle.close()
  }
}

async function readHead (handle: FileHandle, size: number): Promise<Buffer> {
  const head = Buffer.allocUnsafe(Math.min(size, HEAD_BYTES))
  const { bytesRead } = await handle.read(head, 0, head.length, 0)
  return head.subarray(0, bytesRead)
}

function refuseBroken (format: string, problem: string | null): void {
  if (problem !== null) throw new MediaCorruptError(format, problem)
}

async function readAll (handle: FileHandle, size: number): Promise<Buffer> {
  const bytes = Buffer.allocUnsafe(size)
  const { bytesRead } = await handle.read(bytes, 0, size, 0)
  return bytes.subarray(0, bytesRead)
}

async function probeContainer (filePath: string, handle: FileHandle, size: number, family: ContainerFamily, detectedExt: string): Promise<MediaProbe> {
  let tracks: Track[]
  try {
    tracks = await analyzeMediaFile(handle, size)
  } catch (err) {
    if (isIoError(err)) throw err
    throw new MediaCorruptError(detectedExt, `the container could not be read: ${(err as Error).message}`)
  }
  const general = tracks.find((track) => track['@type'] === 'General')
  const video = tracks.find((track) => track['@type'] === 'Video')
  const containerDuration = seconds(general?.Duration ?? video?.Duration)

  if (video !== undefined) {
    // Theora: Chromium no longer plays it and MediaInfoLib finds no duration in it
    if (family === 'ogg') throw new UnsupportedMediaError('Ogg video is not accepted; use WebM or MP4')
    const kind = videoKind(family, detectedExt)
    const width = positive(video.Width)
    const height = positive(video.Height)
    // Phones store portrait video as landscape frames plus a rotation; players show it turned.
    const turned = Math.abs(Number(video.Rotation ?? 0)) % 180 === 90
    return {
      media_type: 'video',
      ...kind,
      width: turned ? height : width,
      height: turned ? width : height,
      duration_seconds: containerDuration
    }
  }
  if (tracks.some((track) => track['@type'] === 'Audio')) {
    const kind = audioKind(family, detectedExt)
    // music-metadata reads MP4 durations from the track header, which counts
    // the encoder's priming samples; MediaInfoLib applies the edit list that
    // cuts them, as players do.
    const duration = family === 'mp4' && containerDuration !== null
      ? containerDuration
      : seconds((await readAudioStream(filePath, kind.format)).duration) ?? containerDuration
    return { media_type: 'audio', ...kind, width: null, height: null, duration_seconds: duration }
  }
  throw new UnsupportedMediaError(`the ${detectedExt} container holds no audio or video track`)
}

function videoKind (family: Exclude<ContainerFamily, 'ogg'>, detectedExt: string): Kind {
  if (family === 'mp4') {
    return detectedExt === 'mov'
      ? { format: 'mov', mime_type: 'video/quicktime', extension: 'mov' }
      : { format: 'mp4', mime_type: 'video/mp4', extension: 'mp4' }
  }
  return detectedExt === 'webm'
    ? { format: 'webm', mime_type: 'video/webm', extension: 'webm' }
    : { format: 'mkv', mime_type: 'video/matroska', extension: 'mkv' }
}

function audioKind (family: ContainerFamily, detectedExt: string): Kind {
  switch (family) {
    case 'mp4': return { format: 'm4a', mime_type: 'audio/mp4', extension: 'm4a' }
    case 'matroska': return detectedExt === 'webm'
      ? { format: 'webm', mime_type: 'audio/webm', extension: 'webm' }
      : { format: 'mka', mime_type: 'audio/matroska', extension: 'mka' }
    case 'ogg': return detectedExt === 'opus'
      ? { format: 'opus', mime_type: 'audio/ogg', extension: 'opus' }
      : { format: 'ogg', mime_type: 'audio/ogg', extension: 'ogg' }
  }
}

/** What music-metadata reads of the audio stream. Streams the file; never holds it. */
async function readAudioStream (filePath: string, format: string): Promise<IFormat> {
  try {
    // `duration: true` makes a VBR mp3 without Xing/Info header count its
    // frames to the end; every other format still stops at its header.
    return (await parseFile(filePath, { duration: true, skipCovers: true })).format
  } catch (err) {
    if (isIoError(err)) throw err
    throw new MediaCorruptError(format, `the audio could not be read: ${(err as Error).message}`)
  }
}

function probeGlb (head: Buffer): MediaProbe {
  // file-type matched magic and version 2; the 12-byte header must be followed by the JSON chunk
  if (head.toString('latin1', 16, 20) !== 'JSON') {
    throw new UnsupportedMediaError('the GLB header is not followed by a JSON chunk')
  }
  return { media_type: 'model3d', ...GLB, width: null, height: null, duration_seconds: null }
}

/** No magic bytes matched: the one text format accepted is a glTF 2.0 JSON model. */
async function probeText (handle: FileHandle, size: number, head: Buffer): Promise<MediaProbe> {
  const start = head.subarray(head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf ? 3 : 0)
  if (!/^\s*\{/.test(start.toString('latin1', 0, 256))) throw new UnsupportedMediaError(NOT_MEDIA)
  if (size > MAX_GLTF_JSON_BYTES) {
    throw new UnsupportedMediaError(`JSON text larger than ${MAX_GLTF_JSON_BYTES} bytes is not accepted as a glTF model; send it as GLB`)
  }
  const text = head.length >= size ? head.toString('utf8') : (await readAll(handle, size)).toString('utf8')
  let model: unknown
  try {
    model = JSON.parse(text.replace(/^\uFEFF/, ''))
  } catch {
    throw new UnsupportedMediaError('the file starts like JSON but is not valid JSON')
  }
  const asset = (model as { asset?: { version?: unknown } }).asset
  if (typeof asset !== 'object' || asset === null || typeof asset.version !== 'string') {
    throw new UnsupportedMediaError('JSON that is not a glTF model (it has no asset.version)')
  }
  return { media_type: 'model3d', ...GLTF, width: null, height: null, duration_seconds: null }
}

function seconds (value: number | undefined): number | null {
  return value !== undefined && Number.isFinite(value) && value > 0 ? Math.round(value * 1000) / 1000 : null
}

function positive (value: number | undefined): number | null {
  return value !== undefined && Number.isInteger(value) && value > 0 ? value : null
}

// Failures of the disk (not of the bytes on it) are not the client's fault
// and must not turn into a 415 or 422.
function isIoError (err: unknown): boolean {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).syscall === 'string'
}
