import { createHash, type Hash } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { open, unlink, type FileHandle } from 'node:fs/promises'
import { Readable, Transform, type TransformCallback } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { once } from 'node:events'
import got, { HTTPError, RequestError, TimeoutError } from 'got'
import { decodeDataUriOrBase64 } from '../data-uri.js'
import {
  FetchForbiddenError, IncompleteUploadError, InvalidSourceError, MediaTooLargeError,
  SourceFailedError, SourceTimeoutError, isCodedError
} from '../errors.js'
import { FetchPolicy } from '../http/address-policy.js'
import { diskWriteError } from './disk-errors.js'
import type { MediaSourceRecord } from '../../schemas/run.js'

/**
 * Where media bytes come from. Plain strings are never guessed at: a client's
 * string is data or a URL because it says so, and a file path only ever comes
 * from server code (backends, CLI), never from a request.
 */
export type MediaInput =
  | Buffer
  | Readable
  | { kind: 'file', path: string }
  | { kind: 'data', data: string }
  | { kind: 'url', url: string, headers?: Record<string, string> }

/** A complete file under a temporary name, not yet part of the run. */
export interface StagedFile {
  path: string
  /**
   * Settles once the bytes are on disk. The fsync starts when the write ends
   * and runs while the file is probed; whoever lists the file in metadata.json
   * waits for it together with that file's own fsync, so the disk's flush
   * latency is paid once. Never rejects unhandled.
   */
  durable: Promise<void>
  size: number
  sha256: string
  /** the first bytes, enough for magic-number and header probes */
  head: Buffer
  source: Partial<MediaSourceRecord> & { kind: string }
}

export interface IngestOptions {
  maxBytes: number
  fetchTimeoutMs: number
  maxRedirects: number
  fetchPolicy: FetchPolicy
}

const HEAD_BYTES = 64 * 1024

export class MediaIngester {
  readonly #options: IngestOptions

  constructor (options: IngestOptions) {
    this.#options = options
  }

  get maxBytes (): number {
    return this.#options.maxBytes
  }

  /**
   * Writes the input to a new file at `path` (which must not exist); on any
   * failure nothing is left behind. A disk that refuses the bytes is the
   * server's failure (507, 503), never the source's or the client's.
   */
  async stage (input: MediaInput, path: string): Promise<StagedFile> {
    try {
      return await this.#write(input, path)
    } catch (err) {
      await unlink(path).catch(() => {})
      throw diskWriteError(err)
    }
  }

  async #write (input: MediaInput, path: string): Promise<StagedFile> {
    if (Buffer.isBuffer(input)) return await this.#writeBuffer(input, path, { kind: 'buffer' })
    if (input instanceof Readable) return await this.#writeStream(input, path, { kind: 'stream' })
    switch (input.kind) {
      case 'data': {
        const { bytes, declared_mime_type: declared } = decodeDataUriOrBase64(input.data)
        return await this.#writeBuffer(bytes, path, declared ? { kind: 'data', declared_mime_type: declared } : { kind: 'data' })
      }
      case 'file':
        return await this.#writeStream(createReadStream(input.path), path, { kind: 'file' }, (err) =>
          (err as NodeJS.ErrnoException).code === 'ENOENT' ? new InvalidSourceError(`no file at ${input.path}`) : err)
      case 'url':
        return await this.#writeUrl(input.url, input.headers ?? {}, path)
      default:
        throw new InvalidSourceError('unknown source kind')
    }
  }

  async #writeBuffer (bytes: Buffer, path: string, source: StagedFile['source']): Promise<StagedFile> {
    if (bytes.length > this.#options.maxBytes) throw new MediaTooLargeError(this.#options.maxBytes)
    const handle = await open(path, 'wx')
    try {
      await handle.writeFile(bytes)
    } catch (err) {
      await handle.close()
      throw err
    }
    return {
      path,
      durable: syncInBackground(handle),
      size: bytes.length,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      head: Buffer.from(bytes.subarray(0, HEAD_BYTES)),
      source
    }
  }

  async #writeStream (input: Readable, path: string, source: StagedFile['source'], mapError: (err: unknown) => unknown = mapStreamError): Promise<StagedFile> {
    const meter = new MeteringStream(this.#options.maxBytes)
    const sink = createWriteStream(path, { flags: 'wx' })
    try {
      await pipeline(input, meter, sink)
    } catch (err) {
      input.destroy()
      // The file may still be opening when the source fails; removing it
      // before then would leave it behind, so wait until the sink is closed.
      if (!sink.closed) await once(sink, 'close').catch(() => {})
      // Before the source's own mapping, which would blame the upload or the remote host.
      throw mapError(diskWriteError(err))
    }
    // Opened before the file is handed on: the committer removes the temp name once the
    // file is listed, and a sync that only then opened it by name would find nothing there.
    const handle = await open(path, 'r')
    return { path, durable: syncInBackground(handle), size: meter.bytes, sha256: meter.digest(), head: meter.head(), source }
  }

  async #writeUrl (url: string, headers: Record<string, string>, path: string): Promise<StagedFile> {
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch {
      throw new InvalidSourceError(`not a URL: ${url.slice(0, 200)}`)
    }
    const policy = this.#options.fetchPolicy
    policy.assertUrl(parsed)
    const maxBytes = this.#options.maxBytes
    const stream = got.stream(parsed, {
      headers,
      timeout: { request: this.#options.fetchTimeoutMs },
      maxRedirects: this.#options.maxRedirects,
      followRedirect: this.#options.maxRedirects > 0,
      dnsLookup: policy.lookup,
      retry: { limit: 0 },
      decompress: true,
      hooks: {
        beforeRedirect: [(options) => { policy.assertUrl(options.url as URL) }]
      }
    })
    stream.on('response', (response: { headers: Record<string, string | string[] | undefined> }) => {
      const length = Number(response.headers['content-length'])
      if (Number.isFinite(length) && length > maxBytes) stream.destroy(new MediaTooLargeError(maxBytes))
    })
    const redacted = redactUrl(parsed)
    const staged = await this.#writeStream(stream, path, { kind: 'url', url: redacted }, (err) => mapFetchError(err, redacted))
    return staged
  }
}

class MeteringStream extends Transform {
  bytes = 0
  readonly #hash: Hash = createHash('sha256')
  readonly #head: Buffer[] = []
  #headBytes = 0
  readonly #limit: number

  constructor (limit: number) {
    super()
    this.#limit = limit
  }

  override _transform (chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length
    if (this.bytes > this.#limit) {
      callback(new MediaTooLargeError(this.#limit))
      return
    }
    this.#hash.update(chunk)
    if (this.#headBytes < HEAD_BYTES) {
      const part = chunk.subarray(0, HEAD_BYTES - this.#headBytes)
      this.#head.push(Buffer.from(part))
      this.#headBytes += part.length
    }
    callback(null, chunk)
  }

  digest (): string {
    return this.#hash.digest('hex')
  }

  head (): Buffer {
    return Buffer.concat(this.#head)
  }
}

/**
 * Starts the file's fsync now and closes it after; a failure is reported to
 * whoever awaits the result, and never as an unhandled rejection.
 */
function syncInBackground (handle: FileHandle): Promise<void> {
  const durable = handle.sync().finally(async () => { await handle.close() })
  durable.catch(() => {})
  return durable
}

function mapStreamError (err: unknown): unknown {
  if (isCodedError(err)) return err
  return new IncompleteUploadError(err instanceof Error ? err.message : String(err))
}

function mapFetchError (err: unknown, url: string): unknown {
  if (isCodedError(err)) return err
  if (err instanceof TimeoutError) return new SourceTimeoutError(`GET ${url} took longer than allowed`)
  if (err instanceof HTTPError) return new SourceFailedError(`GET ${url} answered ${err.response.statusCode}`)
  if (err instanceof RequestError) {
    const cause = (err as { cause?: unknown }).cause
    if (isCodedError(cause)) return cause
    if (err.code === 'ERR_TOO_MANY_REDIRECTS') return new SourceFailedError(`GET ${url} redirected too often`)
    // got refuses a redirect to file:, ftp: and the like before the beforeRedirect hook sees it; it is the policy's refusal all the same.
    if (err.code === 'ERR_UNSUPPORTED_PROTOCOL') return new FetchForbiddenError(`a redirect from ${url} to another scheme than http(s)`)
    return new SourceFailedError(`GET ${url}: ${err.code ?? err.message}`)
  }
  return new SourceFailedError(`GET ${url}: ${err instanceof Error ? err.message : String(err)}`)
}

/** Credentials in the user-info part of a URL must not end up in the research record. */
function redactUrl (url: URL): string {
  const copy = new URL(url.href)
  copy.username = ''
  copy.password = ''
  return copy.href
}
