import { createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { rename, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { Transform, type Readable, type TransformCallback } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { ZipWriter } from '../../export/zip-writer.js'
import { fsyncPath, tempName } from '../blob/durable-fs.js'

/** The manifest inside every archive, its last entry. */
export const MANIFEST_FILE = 'manifest.json'

export interface ArchivedFile {
  /** inside the archive: `<run_id>/<file>` */
  path: string
  size: number
  sha256: string
}

export interface ArchivedRunFiles {
  run_id: string
  /** the run's creation time (ISO 8601), which decides its month */
  timestamp: string
  files: ArchivedFile[]
}

export interface ArchiveManifest {
  format: 'runstore-archive'
  version: 1
  /** YYYY-MM (UTC) of the runs' creation */
  month: string
  created_at: string
  runs: ArchivedRunFiles[]
}

// runs-2026-01.zip is a month's first part, runs-2026-01-2.zip its second, …
const ARCHIVE_NAME = /^runs-(\d{4}-(?:0[1-9]|1[0-2]))(?:-([1-9]\d{0,5}))?\.zip$/

export function archiveName (month: string, part: number): string {
  return part === 1 ? `runs-${month}.zip` : `runs-${month}-${part}.zip`
}

/** The month and part of an archive's file name; null for any other name. */
export function parseArchiveName (name: string): { month: string, part: number } | null {
  const match = ARCHIVE_NAME.exec(name)
  return match === null ? null : { month: match[1]!, part: match[2] === undefined ? 1 : Number(match[2]) }
}

/** Counts and hashes what passes through it. */
export class HashingStream extends Transform {
  size = 0
  readonly #hash = createHash('sha256')

  override _transform (chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.size += chunk.length
    this.#hash.update(chunk)
    callback(null, chunk)
  }

  digest (): string {
    return this.#hash.digest('hex')
  }
}

/** The sha256 and size of a stream's bytes. */
export async function hashStream (stream: Readable): Promise<{ size: number, sha256: string }> {
  const hashing = new HashingStream()
  await pipeline(stream, hashing, async function * (source) { for await (const _ of source) { /* counted and hashed on the way */ } })
  return { size: hashing.size, sha256: hashing.digest() }
}

/**
 * Writes a ZIP as `dir/name`, whole or not at all: `fill` adds the entries
 * (the archive streams to a temp file meanwhile), then the file is synced,
 * renamed over `name` (replacing an older version of it at once) and the
 * folder synced. Returns the archive's size in bytes.
 */
export async function writeArchiveFile (dir: string, name: string, fill: (zip: ZipWriter) => Promise<void>): Promise<number> {
  const temp = join(dir, `${tempName()}-${name}`)
  const zip = new ZipWriter()
  const out = createWriteStream(temp, { flags: 'wx' })
  let bytes = 0
  zip.stream.on('data', (chunk: Buffer) => { bytes += chunk.length })
  const written = pipeline(zip.stream, out)
  try {
    await fill(zip)
    zip.end()
    await written
    await fsyncPath(temp)
    await rename(temp, join(dir, name))
  } catch (err) {
    zip.fail(err instanceof Error ? err : new Error(String(err)))
    await written.catch(() => {})
    await unlink(temp).catch(() => {})
    throw err
  }
  await fsyncPath(dir)
  return bytes
}

/** The run ids an archive entry path belongs to: `<run_id>/<file>`. */
export function entryPath (runId: string, file: string): string {
  return `${runId}/${file}`
}
