import { createWriteStream } from 'node:fs'
import { mkdir, utimes } from 'node:fs/promises'
import { dirname, relative, resolve, sep } from 'node:path'
import { Readable, Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { fsyncPath } from '../storage/blob/durable-fs.js'
import type { ExportSink, ZipEntryOptions } from './zip-writer.js'

/**
 * An export written as loose files into a folder nobody sees yet (the
 * caller renames it into place once `done` resolves): what the ZIP of the
 * same export would hold, entry for entry, one file at a time, each synced,
 * with the entry's time as its mtime. A source that cannot be opened or read,
 * or gives another byte count than its entry says, fails the whole folder.
 */
export class FolderWriter implements ExportSink {
  /** resolves once end() was called and every entry is written and synced; rejects with the first failure */
  readonly done: Promise<void>
  readonly #dir: string
  readonly #dirs = new Set<string>()
  #chain: Promise<void> = Promise.resolve()
  #source: Readable | undefined
  #failed = false
  #ended = false
  #settle!: (err?: Error) => void

  constructor (dir: string) {
    this.#dir = resolve(dir)
    this.done = new Promise<void>((resolve, reject) => { this.#settle = (err) => { err === undefined ? resolve() : reject(err) } })
    // Whoever awaits `done` sees the failure; this only keeps an early one from going unhandled.
    this.done.catch(() => {})
  }

  get closed (): boolean {
    return this.#failed || this.#ended
  }

  async add (name: string, options: ZipEntryOptions, openSource: () => Promise<Readable>): Promise<boolean> {
    if (this.closed) return false
    return await new Promise<boolean>((reached) => {
      this.#chain = this.#chain.then(async () => {
        if (this.#failed) return reached(false)
        reached(true)
        await this.#write(name, options, openSource)
      }).catch((err: unknown) => { this.fail(err instanceof Error ? err : new Error(String(err))) })
    })
  }

  async addBuffer (name: string, options: ZipEntryOptions, bytes: Buffer): Promise<boolean> {
    return await this.add(name, options, async () => Readable.from([bytes], { objectMode: false }))
  }

  end (): void {
    if (this.closed) return
    this.#ended = true
    this.#chain = this.#chain.then(async () => {
      if (this.#failed) return
      // The entries' names must survive a crash as well as their bytes.
      for (const dir of [...this.#dirs].sort((a, b) => b.length - a.length)) await fsyncPath(dir)
      this.#settle()
    }).catch((err: unknown) => { this.fail(err instanceof Error ? err : new Error(String(err))) })
  }

  fail (err: Error): void {
    if (this.#failed) return
    this.#failed = true
    this.#source?.destroy()
    this.#settle(err)
  }

  async #write (name: string, options: ZipEntryOptions, openSource: () => Promise<Readable>): Promise<void> {
    const path = resolve(this.#dir, name)
    const inside = relative(this.#dir, path)
    if (inside === '' || inside.startsWith('..' + sep) || inside === '..') throw new Error(`an export entry outside its folder: ${JSON.stringify(name)}`)
    await this.#mkdirs(dirname(path))
    const source = this.#source = await openSource()
    try {
      let bytes = 0
      const counted = new Transform({ transform (chunk: Buffer, _encoding, callback) { bytes += chunk.length; callback(null, chunk) } })
      await pipeline(source, counted, createWriteStream(path, { flags: 'wx' }))
      if (options.size !== undefined && bytes !== options.size) throw new Error(`${name}: ${bytes} bytes read, ${options.size} expected`)
    } finally {
      this.#source = undefined
    }
    await utimes(path, options.mtime, options.mtime)
    await fsyncPath(path)
  }

  async #mkdirs (dir: string): Promise<void> {
    if (this.#dirs.has(dir)) return
    await mkdir(dir, { recursive: true })
    for (let d = dir; d.length >= this.#dir.length; d = dirname(d)) this.#dirs.add(d)
  }
}
