import { createHash } from 'node:crypto'
import { mkdir, readdir, rm, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import type { RunMetadata } from '../../../schemas/run.js'
import { ArchiveDamagedError, ArchivedRunNotFoundError, RunExistsError } from '../../errors.js'
import { TEMP_PREFIX, fsyncPath } from '../blob/durable-fs.js'
import type { ArchivedRunRef, ArchivedRunSource } from '../index/run-index.js'
import { assertRunId } from '../run-id.js'
import { METADATA_FILE, type RunStorage } from '../run-storage.js'
import type { EmptyTrashReport, RunTrash } from '../run-trash.js'
import { HashingStream, MANIFEST_FILE, archiveName, entryPath, hashStream, parseArchiveName, writeArchiveFile, type ArchiveManifest, type ArchivedRunFiles } from './archive-files.js'
import { ZipReader } from './zip-reader.js'

const DAY_MS = 24 * 60 * 60 * 1000
// Runs of one month written into one part: bounds how long their locks are held and how big one file grows.
const PART_RUNS = 1000
const READ_BATCH = 32
const FINISHED = new Set(['completed', 'failed', 'blocked'])
const MONTH = /^\d{4}-(0[1-9]|1[0-2])$/

export interface RunArchiveOptions {
  storage: RunStorage
  trash: RunTrash
  /** ARCHIVE_DIR */
  dir: string
  /** ARCHIVE_AFTER_DAYS; 0: nothing is archived */
  archiveAfterDays: number
  /** RETENTION_DAYS; 0: archives are kept for ever */
  retentionDays: number
}

/** One archive file, as GET /api/archives lists it. */
export interface ArchiveSummary {
  archive: string
  month: string
  part: number
  runs: number
  bytes: number
  created_at: string
}

export interface ArchiveOptions {
  /** only say what would be archived */
  dryRun?: boolean
  /** default: the current time */
  now?: Date
  /** after each part: runs done of the runs due */
  onProgress?: (done: number, total: number) => void
}

export interface ArchiveReport {
  dry_run: boolean
  archive_after_days: number
  /** the parts written (with dry_run: that would be), each with its runs */
  archives: Array<{ archive: string, month: string, runs: string[] }>
}

export interface PruneReport {
  dry_run: boolean
  retention_days: number
  /** archives removed for good (with dry_run: that would be) */
  archives: Array<{ archive: string, month: string, runs: number }>
  trash: EmptyTrashReport
}

export interface RestoreReport {
  /** runs back in the store, byte for byte as archived */
  restored: string[]
  /** runs of the month left in their archive, with the reason (a live run of that id) */
  skipped: Array<{ run_id: string, reason: string }>
}

/**
 * Old runs out of the live store and back: finished runs older than
 * ARCHIVE_AFTER_DAYS are packed into monthly ZIP archives in ARCHIVE_DIR,
 * each with a manifest of every file's path, size and sha256. An archive is
 * written whole (temp, fsync, rename) before any of its runs leaves the
 * store, so a crash in between leaves them live, and the next pass finds
 * them archived already. Restoring checks every file against the manifest,
 * brings the run back through the blob store and rewrites its archive
 * without it. Pruning removes archives older than RETENTION_DAYS and empties
 * the trash. One writer at a time: the store lock sees to that between
 * processes.
 */
export class RunArchive implements ArchivedRunSource {
  readonly dir: string
  readonly archiveAfterDays: number
  readonly retentionDays: number
  readonly #storage: RunStorage
  readonly #trash: RunTrash
  readonly #manifests = new Map<string, { size: number, mtimeMs: number, manifest: ArchiveManifest }>()
  // Archiving, restoring and pruning one after the other: the schedule and an admin request must not interleave.
  #queue: Promise<unknown> = Promise.resolve()

  constructor (options: RunArchiveOptions) {
    this.#storage = options.storage
    this.#trash = options.trash
    this.dir = options.dir
    this.archiveAfterDays = options.archiveAfterDays
    this.retentionDays = options.retentionDays
  }

  /** The archive files, the newest month (and part) first. */
  async listArchives (): Promise<ArchiveSummary[]> {
    const summaries: ArchiveSummary[] = []
    for (const { name, month, part } of await this.#files()) {
      const info = await stat(join(this.dir, name)).catch(() => null)
      if (info === null) continue
      const manifest = await this.#manifest(name)
      summaries.push({ archive: name, month, part, runs: manifest.runs.length, bytes: info.size, created_at: manifest.created_at })
    }
    return summaries.reverse()
  }

  /** Every archived run once, with the newest archive holding it. */
  async listArchivedRuns (): Promise<ArchivedRunRef[]> {
    const holder = new Map<string, string>()
    for (const { name } of await this.#files()) {
      for (const run of (await this.#manifest(name)).runs) holder.set(run.run_id, name)
    }
    return [...holder].map(([id, archive]) => ({ run_id: id, archive }))
  }

  async readArchivedMetadata (runs: ArchivedRunRef[]): Promise<RunMetadata[]> {
    const byArchive = groupBy(runs, (r) => r.archive)
    const read = new Map<ArchivedRunRef, RunMetadata>()
    for (const [archive, refs] of byArchive) {
      await this.#withReader(archive, async (zip) => {
        for (const ref of refs) read.set(ref, JSON.parse((await zip.read(entryPath(ref.run_id, METADATA_FILE))).toString('utf8')) as RunMetadata)
      })
    }
    return runs.map((r) => read.get(r)!)
  }

  /** Packs the finished runs older than ARCHIVE_AFTER_DAYS into their months' archives (with dryRun: only says which). */
  async archive (options: ArchiveOptions = {}): Promise<ArchiveReport> {
    return await this.#exclusive(async () => await this.#archive(options))
  }

  async #archive (options: ArchiveOptions): Promise<ArchiveReport> {
    const dryRun = options.dryRun ?? false
    const report: ArchiveReport = { dry_run: dryRun, archive_after_days: this.archiveAfterDays, archives: [] }
    if (this.archiveAfterDays === 0) return report
    if (!dryRun) await this.#prepare()
    const cutoff = (options.now ?? new Date()).getTime() - this.archiveAfterDays * DAY_MS
    const due = await this.#dueRuns(cutoff)
    const copies = await this.#archivedCopies()
    const parts = new Map((await this.#files()).map((f) => [f.month, f.part]))
    let done = 0
    for (const [month, runs] of [...groupBy(due, (m) => m.timestamp.slice(0, 7))].sort(([a], [b]) => a.localeCompare(b))) {
      for (let start = 0; start < runs.length; start += PART_RUNS) {
        const part = (parts.get(month) ?? 0) + 1
        const name = archiveName(month, part)
        const ids = runs.slice(start, start + PART_RUNS).map((m) => m.run_id)
        done += ids.length
        if (dryRun) {
          parts.set(month, part)
          report.archives.push({ archive: name, month, runs: ids })
          continue
        }
        let wrote = false
        const archived = await this.#storage.archiveRuns(ids, async (current) => {
          const packed = new Map<string, string>()
          const fresh: RunMetadata[] = []
          for (const metadata of current) {
            const copy = copies.get(metadata.run_id)
            // An earlier pass wrote this run's archive but stopped before the run left the store.
            if (copy !== undefined && await this.#sameAsLive(copy.files)) packed.set(metadata.run_id, copy.archive)
            else if (FINISHED.has(metadata.status)) fresh.push(metadata)
          }
          if (fresh.length > 0) {
            await this.#writePart(name, month, fresh)
            wrote = true
            for (const metadata of fresh) packed.set(metadata.run_id, name)
          }
          return packed
        })
        if (wrote) parts.set(month, part)
        for (const [archive, runsOf] of groupBy(archived, (a) => a.archive)) {
          report.archives.push({ archive, month, runs: runsOf.map((r) => r.run_id) })
        }
        options.onProgress?.(done, due.length)
      }
    }
    return report
  }

  /**
   * Brings a run (a run id) or every run of a month (YYYY-MM) back into the
   * store, each file checked against the manifest's size and sha256, and
   * rewrites their archives without them. RunExistsError for a run id that
   * is live; a month's runs that are live are skipped and stay archived.
   */
  async restore (target: string): Promise<RestoreReport> {
    return await this.#exclusive(async () => await this.#restore(target))
  }

  async #restore (target: string): Promise<RestoreReport> {
    await this.#prepare()
    const month = MONTH.test(target)
    const id = month ? null : assertRunId(target)
    if (id !== null && await this.#storage.runExists(id)) throw new RunExistsError(id)
    const refs = (await this.listArchivedRuns()).filter((r) => id === null ? parseArchiveName(r.archive)?.month === target : r.run_id === id)
    if (refs.length === 0) throw new ArchivedRunNotFoundError(target)
    const report: RestoreReport = { restored: [], skipped: [] }
    for (const [archive, inArchive] of groupBy(refs, (r) => r.archive)) {
      const manifest = await this.#manifest(archive)
      await this.#withReader(archive, async (zip) => {
        for (const ref of inArchive) {
          const run = manifest.runs.find((r) => r.run_id === ref.run_id)!
          try {
            await this.#storage.restoreRun(ref.run_id, async () => { await this.#storage.blobs.createRun(ref.run_id, await readRunFiles(zip, archive, run)) })
            report.restored.push(ref.run_id)
          } catch (err) {
            if (!(err instanceof RunExistsError) || id !== null) throw err
            report.skipped.push({ run_id: ref.run_id, reason: 'a live run has this id' })
          }
        }
      })
    }
    // Out of every archive that holds a copy: an older part may keep one from a pass a crash cut short.
    await this.#dropFromArchives(new Set(report.restored))
    return report
  }

  /** Removes archives whose month ended RETENTION_DAYS ago or earlier, and empties the trash (with dryRun: only says what). */
  async prune (options: { dryRun?: boolean, now?: Date } = {}): Promise<PruneReport> {
    return await this.#exclusive(async () => await this.#prune(options))
  }

  async #prune (options: { dryRun?: boolean, now?: Date }): Promise<PruneReport> {
    const dryRun = options.dryRun ?? false
    const now = options.now ?? new Date()
    const report: PruneReport = { dry_run: dryRun, retention_days: this.retentionDays, archives: [], trash: await this.#trash.emptyTrash({ dryRun, now }) }
    if (this.retentionDays === 0) return report
    const limit = now.getTime() - this.retentionDays * DAY_MS
    const expired = (await this.#files()).filter((f) => monthEnd(f.month) <= limit)
    for (const { name, month } of expired) {
      const manifest = await this.#manifest(name)
      report.archives.push({ archive: name, month, runs: manifest.runs.length })
      if (dryRun) continue
      await unlink(join(this.dir, name))
      await fsyncPath(this.dir)
      this.#manifests.delete(name)
      const remaining = new Set((await this.listArchivedRuns()).map((r) => r.run_id))
      for (const run of manifest.runs) {
        if (!remaining.has(run.run_id) && !await this.#storage.runExists(run.run_id)) this.#storage.events.emit({ type: 'run.deleted', run_id: run.run_id })
      }
    }
    return report
  }

  // ---- inside ----

  async #exclusive<T> (work: () => Promise<T>): Promise<T> {
    const result = this.#queue.then(work)
    this.#queue = result.catch(() => {})
    return await result
  }

  /** The archive folder exists, without what an interrupted write left (one writer holds the store lock). */
  async #prepare (): Promise<void> {
    await mkdir(this.dir, { recursive: true })
    for (const name of await readdir(this.dir)) {
      if (name.startsWith(TEMP_PREFIX)) await rm(join(this.dir, name), { force: true })
    }
  }

  /** The archive files, the oldest month and part first. */
  async #files (): Promise<Array<{ name: string, month: string, part: number }>> {
    const names = await readdir(this.dir).catch((err: unknown) => { if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []; throw err })
    return names.flatMap((name) => {
      const parsed = parseArchiveName(name)
      return parsed === null ? [] : [{ name, ...parsed }]
    }).sort((a, b) => a.month.localeCompare(b.month) || a.part - b.part)
  }

  async #manifest (name: string): Promise<ArchiveManifest> {
    const info = await stat(join(this.dir, name))
    const cached = this.#manifests.get(name)
    if (cached !== undefined && cached.size === info.size && cached.mtimeMs === info.mtimeMs) return cached.manifest
    const manifest = await this.#withReader(name, async (zip) => JSON.parse((await zip.read(MANIFEST_FILE)).toString('utf8')) as ArchiveManifest)
    this.#manifests.set(name, { size: info.size, mtimeMs: info.mtimeMs, manifest })
    return manifest
  }

  async #withReader<T> (name: string, work: (zip: ZipReader) => Promise<T>): Promise<T> {
    const zip = await ZipReader.open(join(this.dir, name))
    try {
      return await work(zip)
    } finally {
      zip.close()
    }
  }

  /** Live runs created before `cutoff` that are finished, the oldest first; ids (UUIDv7) say the creation time before anything is read. */
  async #dueRuns (cutoff: number): Promise<RunMetadata[]> {
    const ids = (await this.#storage.listRunIds()).filter((id) => Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16) < cutoff).reverse()
    const due: RunMetadata[] = []
    for (let start = 0; start < ids.length; start += READ_BATCH) {
      const read = await Promise.allSettled(ids.slice(start, start + READ_BATCH).map(async (id) => await this.#storage.readMetadata(id)))
      for (const result of read) {
        // A run deleted meanwhile, or one whose metadata.json cannot be read (runstore verify names it), stays where it is.
        if (result.status === 'fulfilled' && FINISHED.has(result.value.status) && Date.parse(result.value.timestamp) < cutoff) due.push(result.value)
      }
    }
    return due
  }

  /** Each archived run's newest copy: its archive and files. */
  async #archivedCopies (): Promise<Map<string, { archive: string, files: ArchivedRunFiles }>> {
    const copies = new Map<string, { archive: string, files: ArchivedRunFiles }>()
    for (const { name } of await this.#files()) {
      for (const run of (await this.#manifest(name)).runs) copies.set(run.run_id, { archive: name, files: run })
    }
    return copies
  }

  /** Whether the live run's files are exactly those of an archived copy (names, sizes, sha256). */
  async #sameAsLive (copy: ArchivedRunFiles): Promise<boolean> {
    const blobs = this.#storage.blobs
    const names = await blobs.list(copy.run_id)
    if (names.length !== copy.files.length) return false
    for (const name of names) {
      const archived = copy.files.find((f) => f.path === entryPath(copy.run_id, name))
      if (archived === undefined) return false
      const live = await hashStream(await blobs.open(copy.run_id, name))
      if (live.size !== archived.size || live.sha256 !== archived.sha256) return false
    }
    return true
  }

  /** Writes a new part holding every file of these runs (all the folder holds, not only what metadata.json lists), hashed as it is written. */
  async #writePart (name: string, month: string, runs: RunMetadata[]): Promise<void> {
    const blobs = this.#storage.blobs
    const manifest: ArchiveManifest = { format: 'runstore-archive', version: 1, month, created_at: new Date().toISOString(), runs: [] }
    await writeArchiveFile(this.dir, name, async (zip) => {
      for (const metadata of runs) {
        const entry: ArchivedRunFiles = { run_id: metadata.run_id, timestamp: metadata.timestamp, files: [] }
        manifest.runs.push(entry)
        const mtime = new Date(metadata.updated_at)
        for (const file of await blobs.list(metadata.run_id)) {
          const path = entryPath(metadata.run_id, file)
          const media = metadata.outputs.some((o) => o.filename === file)
          await zip.add(path, { mtime, compress: !media }, async () => {
            const hashing = new HashingStream()
            hashing.once('end', () => { entry.files.push({ path, size: hashing.size, sha256: hashing.digest() }) })
            return (await blobs.open(metadata.run_id, file)).pipe(hashing)
          })
        }
      }
      // Reached once every file before it is written, so every hash is known by then.
      await zip.add(MANIFEST_FILE, { mtime: new Date(), compress: true }, async () => {
        return Readable.from([Buffer.from(JSON.stringify(manifest, null, 2) + '\n')])
      })
    })
    this.#manifests.delete(name)
  }

  /** Rewrites each archive holding any of these runs without them (removed when none is left). */
  async #dropFromArchives (runIds: Set<string>): Promise<void> {
    if (runIds.size === 0) return
    for (const { name } of await this.#files()) {
      const manifest = await this.#manifest(name)
      const keep = manifest.runs.filter((r) => !runIds.has(r.run_id))
      if (keep.length === manifest.runs.length) continue
      if (keep.length === 0) {
        await unlink(join(this.dir, name))
        await fsyncPath(this.dir)
      } else {
        await this.#withReader(name, async (reader) => {
          await writeArchiveFile(this.dir, name, async (zip) => {
            for (const run of keep) {
              for (const file of run.files) {
                const entry = reader.entries.get(file.path)!
                await zip.add(file.path, { mtime: entry.getLastModDate(), compress: entry.compressionMethod !== 0, size: file.size }, async () => await reader.open(file.path))
              }
            }
            await zip.addBuffer(MANIFEST_FILE, { mtime: new Date(), compress: true }, Buffer.from(JSON.stringify({ ...manifest, runs: keep }, null, 2) + '\n'))
          })
        })
      }
      this.#manifests.delete(name)
    }
  }
}

/** A run's files out of its archive, each checked against the manifest; metadata.json last, as the store wants it. */
async function readRunFiles (zip: ZipReader, archive: string, run: ArchivedRunFiles): Promise<Array<[string, Buffer]>> {
  const files: Array<[string, Buffer]> = []
  for (const file of run.files) {
    let bytes: Buffer
    try {
      bytes = await zip.read(file.path)
    } catch (err) {
      throw new ArchiveDamagedError(archive, `${file.path} cannot be read (${(err as Error).message})`)
    }
    if (bytes.length !== file.size || createHash('sha256').update(bytes).digest('hex') !== file.sha256) throw new ArchiveDamagedError(archive, `${file.path} does not match its sha256 in the manifest`)
    files.push([file.path.slice(run.run_id.length + 1), bytes])
  }
  return files.sort(([a], [b]) => Number(a === METADATA_FILE) - Number(b === METADATA_FILE))
}

/** The first instant after a month (YYYY-MM, UTC). */
function monthEnd (month: string): number {
  const [year, m] = month.split('-').map(Number) as [number, number]
  return Date.UTC(year, m, 1)
}

/** Node 20 has no Map.groupBy. */
function groupBy<T, K> (items: readonly T[], key: (item: T) => K): Map<K, T[]> {
  const groups = new Map<K, T[]>()
  for (const item of items) {
    const k = key(item)
    const group = groups.get(k)
    if (group === undefined) groups.set(k, [item])
    else group.push(item)
  }
  return groups
}
