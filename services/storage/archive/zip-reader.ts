import type { Readable } from 'node:stream'
import yauzl from 'yauzl'

/**
 * A ZIP on disk, read through its central directory (yauzl): the entries by
 * name, each opened on its own, so an archive of any size is never held in
 * memory. Entry sizes are checked against the directory as they are read.
 */
export class ZipReader {
  readonly #zip: yauzl.ZipFile
  /** every entry, by its name in the archive */
  readonly entries: ReadonlyMap<string, yauzl.Entry>

  private constructor (zip: yauzl.ZipFile, entries: Map<string, yauzl.Entry>) {
    this.#zip = zip
    this.entries = entries
  }

  static async open (path: string): Promise<ZipReader> {
    const zip = await new Promise<yauzl.ZipFile>((resolve, reject) => {
      yauzl.open(path, { lazyEntries: true, autoClose: false }, (err, file) => { if (err !== null) reject(err); else resolve(file) })
    })
    const entries = new Map<string, yauzl.Entry>()
    try {
      await new Promise<void>((resolve, reject) => {
        zip.on('entry', (entry: yauzl.Entry) => { entries.set(entry.fileName, entry); zip.readEntry() })
        zip.once('end', resolve)
        zip.once('error', reject)
        zip.readEntry()
      })
    } catch (err) {
      zip.close()
      throw err
    }
    return new ZipReader(zip, entries)
  }

  /** The entry's bytes, uncompressed, as a stream; an unknown name fails. */
  async open (name: string): Promise<Readable> {
    const entry = this.entries.get(name)
    if (entry === undefined) throw new Error(`the archive has no entry ${name}`)
    return await new Promise<Readable>((resolve, reject) => {
      this.#zip.openReadStream(entry, (err, stream) => { if (err !== null) reject(err); else resolve(stream) })
    })
  }

  async read (name: string): Promise<Buffer> {
    const chunks: Buffer[] = []
    for await (const chunk of await this.open(name)) chunks.push(chunk as Buffer)
    return Buffer.concat(chunks)
  }

  close (): void {
    this.#zip.close()
  }
}
