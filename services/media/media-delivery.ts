import type { Readable } from 'node:stream'
import { LruCache } from '../cache/lru.js'
import type { MediaOutput } from '../../schemas/run.js'
import { RangeNotSatisfiableError } from '../errors.js'
import type { BlobStore } from '../storage/blob/blob-store.js'

export interface DeliveryRequest {
  range?: string
  ifNoneMatch?: string
  ifModifiedSince?: string
  ifRange?: string
  download?: boolean
}

export interface Delivery {
  statusCode: 200 | 206 | 302 | 304
  /** shared between answers of the same output: read, never change */
  headers: HeaderValues
  body: Buffer | Readable | null
}

export interface MediaDeliveryOptions {
  /** where the stored files are read from */
  blobs: BlobStore
  /** total bytes of media kept in memory; 0 turns the cache off */
  cacheBytes: number
  /** files larger than this always stream from the store */
  maxCachedFileBytes: number
}

type HeaderValues = Readonly<Record<string, string | number>>

/** What every answer for one output shares, built on its first request. */
interface OutputHeaders {
  runId: string
  /** the cache key, built once so that a hit hashes no new string */
  key: string
  etag: string
  inline: HeaderValues
  attachment: HeaderValues
}

/**
 * Answers media requests for stored outputs. Stored files never change, so
 * their bytes and headers can be kept in memory and their ETag is their
 * content hash; only large files and partial requests go to the store.
 */
export class MediaDelivery {
  readonly #blobs: BlobStore
  readonly #files: LruCache<string, Buffer>
  readonly #loading = new Map<string, Promise<Buffer>>()
  readonly #headers = new WeakMap<MediaOutput, OutputHeaders>()
  readonly #maxCachedFileBytes: number

  constructor (options: MediaDeliveryOptions) {
    this.#blobs = options.blobs
    this.#files = new LruCache(options.cacheBytes, (bytes) => bytes.length)
    this.#maxCachedFileBytes = Math.min(options.maxCachedFileBytes, options.cacheBytes)
  }

  get cachedBytes (): number {
    return this.#files.weight
  }

  /** Forgets a deleted run's files (the composition root calls it on every run.deleted event). */
  evictRun (runId: string): void {
    this.#files.deleteWhere((key) => key.startsWith(`${runId}/`))
  }

  /** The answer for one request; an unsatisfiable Range throws RANGE_NOT_SATISFIABLE (416). */
  async deliver (runId: string, output: MediaOutput, request: DeliveryRequest): Promise<Delivery> {
    const shared = this.#outputHeaders(runId, output)
    const headers = request.download === true ? shared.attachment : shared.inline
    const size = output.file_size_bytes

    if (notModified(output, shared.etag, request)) {
      const notModifiedHeaders = { ...headers }
      delete notModifiedHeaders['Content-Length']
      delete notModifiedHeaders['Content-Disposition']
      return { statusCode: 304, headers: notModifiedHeaders, body: null }
    }

    // A store that hands out URLs of its own (S3_MEDIA_REDIRECT) serves the bytes, ranges too; the service only says where.
    const direct = await this.#blobs.directUrl(runId, output.filename, {
      contentType: String(headers['Content-Type']),
      contentDisposition: String(headers['Content-Disposition']),
      cacheControl: String(headers['Cache-Control'])
    })
    // Not cached on the way: the URL expires, the output's URL does not.
    if (direct !== null) return { statusCode: 302, headers: { Location: direct, 'Cache-Control': 'private, no-store' }, body: null }

    const range = request.range !== undefined && rangeApplies(request.ifRange, headers)
      ? parseRange(request.range, size)
      : null
    if (range === 'unsatisfiable') throw new RangeNotSatisfiableError(JSON.stringify(request.range!.slice(0, 100)), size)
    if (range !== null) {
      const cached = this.#files.get(shared.key)
      const body = cached !== undefined
        ? cached.subarray(range.start, range.end + 1)
        : await this.#blobs.open(runId, output.filename, range)
      return { statusCode: 206, headers: { ...headers, 'Content-Range': `bytes ${range.start}-${range.end}/${size}`, 'Content-Length': range.end - range.start + 1 }, body }
    }

    if (size > this.#maxCachedFileBytes) return { statusCode: 200, headers, body: await this.#blobs.open(runId, output.filename) }
    // The hot path: shared headers, bytes from memory, nothing copied.
    return { statusCode: 200, headers, body: this.#files.get(shared.key) ?? await this.#load(shared.key, runId, output.filename) }
  }

  /** Reads a file that is not cached yet into the cache; concurrent first requests read it once. */
  async #load (key: string, runId: string, filename: string): Promise<Buffer> {
    let loading = this.#loading.get(key)
    if (loading === undefined) {
      loading = this.#blobs.read(runId, filename).then((bytes) => {
        this.#files.set(key, bytes)
        return bytes
      }).finally(() => this.#loading.delete(key))
      this.#loading.set(key, loading)
    }
    return await loading
  }

  #outputHeaders (runId: string, output: MediaOutput): OutputHeaders {
    let shared = this.#headers.get(output)
    if (shared === undefined || shared.runId !== runId) {
      const etag = `"${output.sha256}"`
      const common = {
        'Content-Type': output.mime_type,
        'Content-Length': output.file_size_bytes,
        'Accept-Ranges': 'bytes',
        ETag: etag,
        'Last-Modified': new Date(output.created_at).toUTCString(),
        'Cache-Control': 'public, max-age=31536000, immutable',
        'X-Content-Type-Options': 'nosniff'
      }
      shared = {
        runId,
        key: `${runId}/${output.filename}`,
        etag,
        // frozen: answers hand them out without copying
        inline: Object.freeze({ ...common, 'Content-Disposition': `inline; filename="${output.filename}"` }),
        attachment: Object.freeze({ ...common, 'Content-Disposition': `attachment; filename="${output.filename}"` })
      }
      this.#headers.set(output, shared)
    }
    return shared
  }
}

function notModified (output: MediaOutput, etag: string, request: DeliveryRequest): boolean {
  if (request.ifNoneMatch !== undefined) return etagMatches(request.ifNoneMatch, etag)
  if (request.ifModifiedSince !== undefined) {
    const since = Date.parse(request.ifModifiedSince)
    // Last-Modified has whole seconds; compare at that precision.
    return Number.isFinite(since) && Math.floor(Date.parse(output.created_at) / 1000) * 1000 <= since
  }
  return false
}

/** Whether an If-None-Match header names `etag` (weak comparison: W/"x" matches "x"). */
export function etagMatches (ifNoneMatch: string, etag: string): boolean {
  return ifNoneMatch.split(',').some((tag) => {
    const t = tag.trim()
    return t === '*' || t === etag || t === `W/${etag}`
  })
}

function rangeApplies (ifRange: string | undefined, headers: HeaderValues): boolean {
  if (ifRange === undefined) return true
  return ifRange.trim() === headers.ETag || ifRange.trim() === headers['Last-Modified']
}

/**
 * One byte range of `bytes=a-b`, `bytes=a-` or `bytes=-n`. Several ranges are
 * answered with the whole file, which RFC 9110 allows; anything malformed or
 * outside the file is unsatisfiable.
 */
export function parseRange (header: string, size: number): { start: number, end: number } | 'unsatisfiable' | null {
  const match = /^bytes=(.+)$/.exec(header.trim())
  if (match === null) return 'unsatisfiable'
  const specs = match[1]!.split(',')
  if (specs.length > 1) return null
  const spec = /^\s*(\d*)-(\d*)\s*$/.exec(specs[0]!)
  if (spec === null || (spec[1] === '' && spec[2] === '')) return 'unsatisfiable'
  let start: number
  let end: number
  if (spec[1] === '') {
    const suffix = Number(spec[2])
    if (suffix === 0 || size === 0) return 'unsatisfiable'
    start = Math.max(0, size - suffix)
    end = size - 1
  } else {
    start = Number(spec[1])
    end = spec[2] === '' ? size - 1 : Math.min(Number(spec[2]), size - 1)
    if (start >= size || start > end) return 'unsatisfiable'
  }
  return { start, end }
}
