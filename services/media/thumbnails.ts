import { createHash } from 'node:crypto'
import { createWriteStream, renameSync } from 'node:fs'
import { mkdir, readdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { MediaOutput } from '../../schemas/run.js'
import { ImageTooLargeError, ThumbnailFailedError } from '../errors.js'
import type { BlobStore } from '../storage/blob/blob-store.js'
import { TEMP_PREFIX, tempName, writeFileDurably } from '../storage/blob/durable-fs.js'
import { isRunId } from '../storage/run-id.js'
import { firstFrame } from './ffmpeg.js'
import { type RenderError, renderPoster, resizeImage, type PosterType, type ThumbnailFormat } from './thumbnail-render.js'

export interface Thumbnail {
  bytes: Buffer
  format: ThumbnailFormat
  /** strong: names the original's sha256, what was made of it, the width and the format */
  etag: string
  /** the cache file's name, for Content-Disposition */
  name: string
}

export interface ThumbnailsOptions {
  /** where the originals are read from */
  blobs: BlobStore
  /** where thumbnails are kept: outside every run folder */
  cacheDir: string
  /** the decoder refuses larger pictures (sharp's limitInputPixels) */
  maxImagePixels: number
  /** absolute path of ffmpeg, found at start (findFfmpeg); null: videos get a neutral poster */
  ffmpeg: string | null
  /** the largest width asked for: a video's first frame is kept at most this wide */
  maxWidth: number
  /** pictures decoded at once: each holds its original in memory */
  concurrency: number
  logger?: { warn: (details: object, message: string) => void }
}

type Shows = 'image' | 'frame' | 'poster'

const SHA256 = /^[0-9a-f]{64}$/

/**
 * Thumbnails of stored outputs, each made once and kept as a file in
 * `cacheDir/<run_id>/`, named by the original's sha256, what it shows, the
 * width and the format: a name can never stand for other bytes, so a file
 * found is always right. Concurrent first requests share one making. The
 * cache is derived data: a file that cannot be written is served anyway and
 * made again next time, and the whole folder may be deleted at any moment.
 */
export class Thumbnails {
  readonly cacheDir: string
  readonly ffmpeg: string | null
  readonly #blobs: BlobStore
  readonly #maxImagePixels: number
  readonly #maxWidth: number
  readonly #logger: ThumbnailsOptions['logger']
  readonly #slots: Slots
  /** cache file path → its bytes being read or made */
  readonly #pending = new Map<string, Promise<Buffer>>()
  /** videos (sha256) ffmpeg could not read in this process: they keep their poster */
  readonly #noFrame = new Set<string>()
  #made = 0

  constructor (options: ThumbnailsOptions) {
    this.cacheDir = options.cacheDir
    this.ffmpeg = options.ffmpeg
    this.#blobs = options.blobs
    this.#maxImagePixels = options.maxImagePixels
    this.#maxWidth = options.maxWidth
    this.#logger = options.logger
    this.#slots = new Slots(options.concurrency)
  }

  /** cache files made by this process (thumbnails, posters, first frames): every other answer came from the cache */
  get made (): number {
    return this.#made
  }

  /** The ETag an answer for this output would have: a conditional request is answered before anything is made. */
  etag (output: MediaOutput, width: number, format: ThumbnailFormat): string {
    return `"${cacheName(output, this.#shows(output), width, format)}"`
  }

  /** The thumbnail of `output` (of run `runId`) at `width`, from the cache or made now. */
  async get (runId: string, output: MediaOutput, width: number, format: ThumbnailFormat): Promise<Thumbnail> {
    if (!isRunId(runId)) throw new TypeError(`not a run id: ${JSON.stringify(runId).slice(0, 80)}`)
    if (!SHA256.test(output.sha256)) throw new ThumbnailFailedError(`${runId}/${output.filename}`, 'its metadata has no valid sha256')
    const shows = this.#shows(output)
    if (shows === 'image') {
      if (output.width !== null && output.height !== null && output.width * output.height > this.#maxImagePixels) {
        throw new ImageTooLargeError(output.width, output.height, this.#maxImagePixels)
      }
      return await this.#thumbnail(runId, output, shows, width, format, async () => await this.#resize(runId, output, async () => await this.#original(runId, output), width, format))
    }
    if (shows === 'frame') {
      try {
        // The frame, kept at the largest width, is read only when a width is not cached yet.
        return await this.#thumbnail(runId, output, shows, width, format, async () => {
          const frame = await this.#cached(runId, `${output.sha256}.frame.png`, async () => await this.#slots.run(async () => await this.#firstFrame(runId, output)))
          return await this.#resize(runId, output, async () => frame, width, format)
        })
      } catch (err) {
        // ffmpeg is a bonus: whatever goes wrong with the frame, the video still gets a picture.
        this.#noFrame.add(output.sha256)
        this.#logger?.warn({ err, run_id: runId, file: output.filename }, 'no first frame could be taken of a video: it gets a neutral poster')
      }
    }
    const [posterWidth, posterHeight] = posterSize(output, width)
    return await this.#thumbnail(runId, output, 'poster', width, format, async () =>
      await this.#slots.run(async () => await renderPoster(output.type as PosterType, posterWidth, posterHeight, format)))
  }

  /**
   * Forgets a deleted run's thumbnails (the composition root calls it on
   * every run.deleted event). The folder is renamed at once, before the
   * deleting request is answered, so nothing of the run is served after its
   * deletion; then removed (or, after a crash, by the sweep).
   */
  async removeRun (runId: string): Promise<void> {
    if (!isRunId(runId)) return
    const doomed = join(this.cacheDir, tempName())
    try {
      renameSync(join(this.cacheDir, runId), doomed)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
      throw err
    }
    await rm(doomed, { recursive: true, force: true })
  }

  /**
   * At start: removes half-written files and the thumbnails of runs that no
   * longer exist (deleted by another process, or while a thumbnail was being
   * made). Returns what it removed, relative to the cache folder.
   */
  async sweep (runExists: (runId: string) => Promise<boolean>): Promise<string[]> {
    const removed: string[] = []
    let entries
    try {
      entries = await readdir(this.cacheDir, { withFileTypes: true })
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return removed
      throw err
    }
    for (const entry of entries) {
      if (entry.name.startsWith(TEMP_PREFIX) || (entry.isDirectory() && isRunId(entry.name) && !await runExists(entry.name))) {
        await rm(join(this.cacheDir, entry.name), { recursive: true, force: true })
        removed.push(entry.name)
      } else if (entry.isDirectory() && isRunId(entry.name)) {
        for (const name of await readdir(join(this.cacheDir, entry.name))) {
          if (!name.startsWith(TEMP_PREFIX)) continue
          await rm(join(this.cacheDir, entry.name, name), { force: true })
          removed.push(`${entry.name}/${name}`)
        }
      }
    }
    return removed
  }

  #shows (output: MediaOutput): Shows {
    if (output.type === 'image') return 'image'
    return output.type === 'video' && this.ffmpeg !== null && !this.#noFrame.has(output.sha256) ? 'frame' : 'poster'
  }

  async #thumbnail (runId: string, output: MediaOutput, shows: Shows, width: number, format: ThumbnailFormat, make: () => Promise<Buffer>): Promise<Thumbnail> {
    const name = cacheName(output, shows, width, format)
    return { bytes: await this.#cached(runId, name, make), format, etag: `"${name}"`, name }
  }

  /** The cache file's bytes, or made and written there; one read or making per file at a time. */
  async #cached (runId: string, name: string, make: () => Promise<Buffer>): Promise<Buffer> {
    const dir = join(this.cacheDir, runId)
    const path = join(dir, name)
    let pending = this.#pending.get(path)
    if (pending === undefined) {
      // Registered before the first await: whoever asks meanwhile waits for this one.
      pending = (async () => {
        try {
          return await readFile(path)
        } catch (err) {
          // Not there yet, or a cache that cannot be read: either way the thumbnail is made.
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.#logger?.warn({ err, path }, 'the thumbnail cache cannot be read')
        }
        const bytes = await make()
        this.#made++
        try {
          await mkdir(dir, { recursive: true })
          await writeFileDurably(path, bytes)
        } catch (err) {
          // The answer does not depend on the cache: a full disk or a run deleted meanwhile only costs a remake.
          this.#logger?.warn({ err, path }, 'a thumbnail could not be kept in the cache')
        }
        return bytes
      })().finally(() => this.#pending.delete(path))
      this.#pending.set(path, pending)
    }
    return await pending
  }

  /** The original's bytes, checked against the sha256 its name in the cache is made from. */
  async #original (runId: string, output: MediaOutput): Promise<Buffer> {
    const bytes = await this.#blobs.read(runId, output.filename).catch(() => {
      throw new ThumbnailFailedError(`${runId}/${output.filename}`, 'the stored file cannot be read')
    })
    if (createHash('sha256').update(bytes).digest('hex') !== output.sha256) {
      throw new ThumbnailFailedError(`${runId}/${output.filename}`, 'the stored file no longer matches its sha256')
    }
    return bytes
  }

  /** `picture` is read inside the slot: the originals in memory at once are bounded too. */
  async #resize (runId: string, output: MediaOutput, picture: () => Promise<Buffer>, width: number, format: ThumbnailFormat): Promise<Buffer> {
    return await this.#slots.run(async () => {
      const bytes = await picture()
      try {
        return await resizeImage(bytes, width, format, this.#maxImagePixels)
      } catch (err) {
        // resizeImage fails only with a RenderError: sharp's own words.
        throw new ThumbnailFailedError(`${runId}/${output.filename}`, (err as RenderError).message)
      }
    })
  }

  /** ffmpeg reads a file: the video is copied out of the store (checked against its sha256), read, and removed. */
  async #firstFrame (runId: string, output: MediaOutput): Promise<Buffer> {
    await mkdir(this.cacheDir, { recursive: true })
    // No extension: ffmpeg tells the container from its content.
    const copy = join(this.cacheDir, tempName())
    try {
      const hash = createHash('sha256')
      await pipeline(
        await this.#blobs.open(runId, output.filename),
        new Transform({ transform (chunk: Buffer, _encoding, done) { hash.update(chunk); done(null, chunk) } }),
        createWriteStream(copy, { flags: 'wx' })
      )
      if (hash.digest('hex') !== output.sha256) throw new Error('the stored file no longer matches its sha256')
      return await firstFrame(this.ffmpeg!, copy, this.#maxWidth)
    } finally {
      await rm(copy, { force: true })
    }
  }
}

function cacheName (output: MediaOutput, shows: Shows, width: number, format: ThumbnailFormat): string {
  return `${output.sha256}.${shows === 'image' ? '' : `${shows}.`}${width}.${format === 'webp' ? 'webp' : 'jpg'}`
}

/** A poster has the medium's proportions where they are known (a video's), never wider than the medium; else 16:9 for video, square for the rest. */
function posterSize (output: MediaOutput, width: number): [number, number] {
  if (output.width !== null && output.height !== null && output.width > 0 && output.height > 0) {
    const w = Math.min(width, output.width)
    return [w, Math.max(1, Math.round(w * output.height / output.width))]
  }
  return [width, output.type === 'video' ? Math.round(width * 9 / 16) : width]
}

/** At most `size` pieces of work at once; the rest wait in order. */
class Slots {
  #free: number
  readonly #waiting: Array<() => void> = []

  constructor (size: number) {
    this.#free = size
  }

  async run<T> (work: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--
    else await new Promise<void>((resolve) => this.#waiting.push(resolve))
    try {
      return await work()
    } finally {
      const next = this.#waiting.shift()
      if (next === undefined) this.#free++
      else next()
    }
  }
}

/**
 * WebP when the client names it (every current browser does for images),
 * JPEG otherwise: `*\/*` from a script or an old library promises nothing
 * about WebP.
 */
export function thumbnailFormatFor (accept: string | undefined): ThumbnailFormat {
  for (const entry of (accept ?? '').split(',')) {
    const [type, ...params] = entry.split(';').map((part) => part.trim().toLowerCase())
    if (type !== 'image/webp') continue
    const q = params.find((p) => p.startsWith('q='))
    return q === undefined || Number(q.slice(2)) > 0 ? 'webp' : 'jpeg'
  }
  return 'jpeg'
}
