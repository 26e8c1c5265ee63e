import { Readable } from 'node:stream'
import { ZipFile } from 'yazl'

export interface ZipEntryOptions {
  mtime: Date
  /** deflate the bytes; off for media and for formats that are compressed already */
  compress: boolean
  /** the byte count the source must have; a different count fails the archive */
  size?: number
}

/** Where an export's entries go: a ZIP stream (ZipWriter) or a folder (FolderWriter). */
export interface ExportSink {
  /** finished, failed or abandoned: no more entries are taken */
  readonly closed: boolean
  /** resolves true once the sink reaches the entry (and calls `open`), false when it closed first */
  add: (name: string, options: ZipEntryOptions, open: () => Promise<Readable>) => Promise<boolean>
  addBuffer: (name: string, options: ZipEntryOptions, bytes: Buffer) => Promise<boolean>
  /** no more entries */
  end: () => void
  /** ends the sink with this error */
  fail: (err: Error) => void
}

/**
 * A ZIP written as a stream (yazl), for archives of any size. Each entry's
 * bytes are opened only when the archive reaches it, so one source is open
 * at a time; a source that cannot be opened or read ends the stream with
 * that error (never a ZIP that looks whole); a reader that goes away
 * (the stream destroyed) stops every open source.
 */
export class ZipWriter implements ExportSink {
  /** the archive's bytes */
  readonly stream: Readable
  readonly #zip = new ZipFile()
  readonly #sources = new Set<Readable>()
  readonly #settled: Promise<false>

  constructor () {
    this.stream = this.#zip.outputStream as Readable
    this.#zip.on('error', (err: Error) => { this.fail(err) })
    // Whoever consumes the stream sees its error; this listener only keeps one
    // that comes before anyone listens from bringing the process down.
    this.stream.on('error', () => {})
    this.#settled = new Promise((resolve) => {
      this.stream.once('close', () => {
        for (const source of this.#sources) source.destroy()
        resolve(false)
      })
    })
  }

  /** The stream is closed: finished, failed or abandoned by its reader. */
  get closed (): boolean {
    return this.stream.destroyed
  }

  /**
   * Adds an entry whose bytes `open` gives when the archive reaches it.
   * Resolves true when it does, false when the archive closed first, so a
   * producer can stay a step ahead of the reader instead of queueing everything.
   */
  async add (name: string, options: ZipEntryOptions, open: () => Promise<Readable>): Promise<boolean> {
    if (this.closed) return false
    let reached!: (value: true) => void
    const opened = new Promise<true>((resolve) => { reached = resolve })
    this.#zip.addReadStreamLazy(name, options, (done) => {
      reached(true)
      open().then((source) => {
        if (this.closed) {
          source.destroy()
          return
        }
        this.#sources.add(source)
        source.once('close', () => { this.#sources.delete(source) })
        // yazl pipes the source without listening for its errors.
        source.once('error', (err) => { this.fail(err) })
        done(null, source)
      }, (err: unknown) => { this.fail(err instanceof Error ? err : new Error(String(err))) })
    })
    return await Promise.race([opened, this.#settled])
  }

  async addBuffer (name: string, options: ZipEntryOptions, bytes: Buffer): Promise<boolean> {
    return await this.add(name, options, async () => Readable.from([bytes], { objectMode: false }))
  }

  /** No more entries: the central directory follows the last one. */
  end (): void {
    if (!this.closed) this.#zip.end()
  }

  /** Ends the stream with this error: the reader sees a broken transfer. */
  fail (err: Error): void {
    if (!this.closed) this.stream.destroy(err)
  }
}
