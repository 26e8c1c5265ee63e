import { createReadStream } from 'node:fs'
import { lstat, mkdir, readdir, readFile, rename, rm, stat, statfs, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { isRunId } from '../run-id.js'
import { BlobExistsError, BlobNotFoundError, UnsyncedWriteError, type BlobFile, type BlobSpace, type BlobStat, type BlobStore, type ByteRange, type StagedBlob, type TrashedRun } from './blob-store.js'
import { writingToDisk } from '../disk-errors.js'
import { byTrashTime, fileName, parseTrashEntry, trashEntryName } from './trash-entry.js'
import { TEMP_PREFIX, fsyncPath, isOwnTemp, linkWithoutOverwrite, newTempTag, settleAll, tempName, writeFileSynced, writeFilesDurably } from './durable-fs.js'

// The crash sweep reads which files a run lists; the run records own the format.
const METADATA_FILE = 'metadata.json'
// What isWritable writes: an empty file still fits on a full disk, a block of data does not.
const WRITE_PROBE_BYTES = 4096
// Trashed runs wait in the storage root's own file system, so that going in and coming back are one rename each.
// Not a run id and not a temp name: neither listRuns nor the crash sweep takes it for anything of theirs.
const TRASH_DIR = '.trash'

/**
 * Runs as folders on the local disk: `<root>/<run_id>/<file>`. Folders appear
 * by rename, files by temp + fsync + rename (+ fsync of the folder), staged
 * media by link under a name that must be free. Everything half-made carries
 * the `.tmp-` prefix and this store's tag, and recover() removes what
 * carries the prefix but another tag: it may run while the store writes.
 * Deleted runs are renamed into `<root>/.trash/` and out again. A write the disk
 * refuses (full, read-only, failing) fails with the coded error
 * disk-errors.ts makes of it, after its temp files are gone.
 */
export class LocalBlobStore implements BlobStore {
  readonly root: string
  readonly description: string
  readonly shared = false
  /** in the names of this store's half-made files, which recover() leaves alone */
  readonly #tag = newTempTag()

  /** `root` must be absolute: run ids become folder names under it, never anything a client sent. */
  constructor (root: string) {
    this.root = root
    this.description = `local:${root}`
  }

  async prepare (): Promise<void> {
    await mkdir(this.root, { recursive: true })
  }

  async recover (): Promise<{ removed: string[] }> {
    await this.prepare()
    const removed: string[] = []
    for (const entry of await readdir(this.root, { withFileTypes: true })) {
      if (isOwnTemp(entry.name, this.#tag)) continue
      if (entry.name.startsWith(TEMP_PREFIX)) {
        await rm(join(this.root, entry.name), { recursive: true, force: true })
        removed.push(entry.name)
      } else if (entry.isDirectory() && isRunId(entry.name)) {
        try {
          for (const name of await sweepRunFolder(join(this.root, entry.name), this.#tag)) removed.push(`${entry.name}/${name}`)
        } catch (err) {
          // Deleted (or archived) meanwhile: the sweep runs while the store serves.
          if (!isMissing(err)) throw err
        }
      }
    }
    return { removed }
  }

  async listRuns (): Promise<string[]> {
    const entries = await readdir(this.root, { withFileTypes: true })
    return entries.filter((e) => e.isDirectory() && isRunId(e.name)).map((e) => e.name).sort().reverse()
  }

  async createRun (runId: string, files: readonly BlobFile[]): Promise<void> {
    // Built under a temporary name and renamed, so a run folder is whole or absent.
    const building = join(this.root, tempName(this.#tag))
    await writingToDisk(async () => {
      await mkdir(building)
      try {
        // Nobody can see the folder yet, so its files need no rename of their own,
        // and once they exist the folder and every file are synced at once.
        const paths = files.map(([name]) => join(building, name))
        await settleAll(files.map(async ([, data], i) => { await writeFile(paths[i]!, data, { flag: 'wx' }) }))
        await settleAll([...paths, building].map(fsyncPath))
        await rename(building, this.#dir(runId))
        await fsyncPath(this.root)
      } catch (err) {
        await rm(building, { recursive: true, force: true })
        const code = (err as NodeJS.ErrnoException).code
        throw code === 'ENOTEMPTY' || code === 'EEXIST' ? new BlobExistsError(runId) : err
      }
    })
  }

  async writeFiles (runId: string, files: readonly BlobFile[], alongside: ReadonlyArray<Promise<void>> = []): Promise<void> {
    const dir = this.#dir(runId)
    await writingToDisk(async () => { await writeFilesDurably(dir, files, alongside, this.#tag) })
  }

  stagingPath (runId: string): string {
    // In the run's own folder: the same file system, so putStaged can link.
    return join(this.#dir(runId), tempName(this.#tag))
  }

  async putStaged (runId: string, name: string, staged: StagedBlob): Promise<void> {
    const path = join(this.#dir(runId), name)
    await writingToDisk(async () => {
      try {
        await linkWithoutOverwrite(staged.path, path)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new BlobExistsError(runId, name)
        throw err
      }
    })
  }

  async discardStaged (staged: Pick<StagedBlob, 'path'>): Promise<void> {
    await unlink(staged.path).catch(() => {})
  }

  async read (runId: string, name: string): Promise<Buffer> {
    try {
      return await readFile(this.#path(runId, name))
    } catch (err) {
      throw notFound(err, runId, name)
    }
  }

  async open (runId: string, name: string, range?: ByteRange): Promise<Readable> {
    const stream = createReadStream(this.#path(runId, name), range === undefined ? {} : { start: range.start, end: range.end })
    // Opening is asynchronous; a missing file must fail here, not later in the middle of an answer.
    await new Promise<void>((resolve, reject) => {
      stream.once('ready', () => { stream.off('error', reject); resolve() })
      stream.once('error', reject)
    }).catch((err: unknown) => { throw notFound(err, runId, name) })
    return stream
  }

  async directUrl (): Promise<null> {
    // The bytes of a run folder are reachable through the service only.
    return null
  }

  async stat (runId: string, name: string): Promise<BlobStat | null> {
    try {
      const info = await stat(this.#path(runId, name))
      return info.isFile() ? { size: info.size, modified: info.mtime } : null
    } catch (err) {
      if (isMissing(err)) return null
      throw err
    }
  }

  async list (runId: string): Promise<string[]> {
    let names: string[]
    try {
      names = await readdir(this.#dir(runId))
    } catch (err) {
      if (isMissing(err)) return []
      throw err
    }
    return names.filter((name) => !name.startsWith(TEMP_PREFIX)).sort()
  }

  async delete (runId: string, name: string): Promise<void> {
    await rm(this.#path(runId, name), { force: true })
  }

  async deleteRun (runId: string): Promise<void> {
    // Renamed first, so the run disappears at once and a crash mid-delete leaves only a temp folder.
    const doomed = join(this.root, tempName(this.#tag))
    const dir = this.#dir(runId)
    await writingToDisk(async () => { await rename(dir, doomed) })
    await rm(doomed, { recursive: true, force: true })
  }

  async trashRun (runId: string, deletedAt: Date): Promise<TrashedRun> {
    const entry = { runId, deletedAt }
    const trash = join(this.root, TRASH_DIR)
    const dir = this.#dir(runId)
    await writingToDisk(async () => {
      await mkdir(trash, { recursive: true })
      await rename(dir, this.#trashPath(entry))
    }).catch((err: unknown) => { throw isMissing(err) ? new BlobNotFoundError(runId, undefined, err) : err })
    await syncMove(this.root, trash, `run ${runId} is in the trash`)
    return entry
  }

  async listTrash (): Promise<TrashedRun[]> {
    let names: string[]
    try {
      names = await readdir(join(this.root, TRASH_DIR))
    } catch (err) {
      if (isMissing(err)) return []
      throw err
    }
    return names.flatMap((name) => {
      const entry = parseTrashEntry(name)
      return entry === null ? [] : [entry]
    }).sort(byTrashTime)
  }

  async readTrashed (entry: TrashedRun, name: string): Promise<Buffer> {
    try {
      return await readFile(join(this.#trashPath(entry), fileName(name)))
    } catch (err) {
      throw notFound(err, entry.runId, name)
    }
  }

  async restoreTrashed (entry: TrashedRun): Promise<void> {
    const from = this.#trashPath(entry)
    const to = this.#dir(entry.runId)
    // rename() would replace an empty folder of that name: a run is never put in place of anything.
    if (await lstat(to).then(() => true, (err: unknown) => { if (isMissing(err)) return false; throw err })) throw new BlobExistsError(entry.runId)
    await writingToDisk(async () => {
      // An upload that was streaming when the run was trashed left its temp file there.
      await sweepRunFolder(from)
      await rename(from, to)
    }).catch((err: unknown) => {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOTEMPTY' || code === 'EEXIST') throw new BlobExistsError(entry.runId)
      throw isMissing(err) ? new BlobNotFoundError(entry.runId, undefined, err) : err
    })
    await syncMove(join(this.root, TRASH_DIR), this.root, `run ${entry.runId} is back from the trash`)
  }

  async removeTrashed (entry: TrashedRun): Promise<boolean> {
    // Renamed to a temp name first, like deleteRun: the entry is gone at once, and a crash leaves what the sweep removes.
    const doomed = join(this.root, tempName(this.#tag))
    try {
      await writingToDisk(async () => { await rename(this.#trashPath(entry), doomed) })
    } catch (err) {
      if (isMissing(err)) return false
      throw err
    }
    await rm(doomed, { recursive: true, force: true })
    return true
  }

  async isWritable (): Promise<boolean> {
    const probe = join(this.root, tempName(this.#tag))
    try {
      await writeFileSynced(probe, Buffer.alloc(WRITE_PROBE_BYTES))
      return true
    } catch {
      return false
    } finally {
      // A probe that was created but could not be filled must not stay either.
      await unlink(probe).catch(() => {})
    }
  }

  async space (): Promise<BlobSpace> {
    const { bavail, blocks, bsize } = await statfs(this.root)
    return { availableBytes: bavail * bsize, totalBytes: blocks * bsize }
  }

  #dir (runId: string): string {
    return join(this.root, checkedRunId(runId))
  }

  #path (runId: string, name: string): string {
    return join(this.#dir(runId), fileName(name))
  }

  #trashPath (entry: TrashedRun): string {
    checkedRunId(entry.runId)
    return join(this.root, TRASH_DIR, trashEntryName(entry))
  }
}

function checkedRunId (runId: string): string {
  if (!isRunId(runId)) throw new TypeError(`not a run id: ${JSON.stringify(runId).slice(0, 80)}`)
  return runId
}


/** After a folder was renamed from one place to another: both sides synced, or UnsyncedWriteError (it has moved, nothing may be undone). */
async function syncMove (from: string, to: string, what: string): Promise<void> {
  try {
    await settleAll([fsyncPath(from), fsyncPath(to)])
  } catch (err) {
    throw new UnsyncedWriteError(`${what}, but the move could not be synced to disk`, err)
  }
}

/**
 * Removes what interrupted writes left in a run's folder: temp files, and
 * outputs named after their temp file but never listed. Returns the names.
 */
/** Removes the half-made files in a run folder (and what they prove to be ours), except those of the writer with `ownTag`. */
async function sweepRunFolder (dir: string, ownTag?: string): Promise<string[]> {
  const removed: string[] = []
  for (const name of await readdir(dir)) {
    if (!name.startsWith(TEMP_PREFIX) || (ownTag !== undefined && isOwnTemp(name, ownTag))) continue
    const info = await lstat(join(dir, name))
    if (info.isFile() && info.nlink > 1) {
      for (const twin of await unlistedTwins(dir, info.ino)) {
        await rm(join(dir, twin), { force: true })
        removed.push(twin)
      }
    }
    await rm(join(dir, name), { recursive: true, force: true })
    removed.push(name)
  }
  return removed
}

/**
 * Output names that are the same file as a staged temp file (a crash came
 * between linking it and listing it) but that metadata.json does not list.
 * The shared inode proves they are ours; a file copied in by hand never is.
 */
async function unlistedTwins (dir: string, ino: number): Promise<string[]> {
  let listed: Set<string>
  try {
    listed = new Set((JSON.parse(await readFile(join(dir, METADATA_FILE), 'utf8')) as { outputs: Array<{ filename: string }> }).outputs.map((o) => o.filename))
  } catch {
    return [] // unreadable metadata: leave everything for a person to look at
  }
  const twins: string[] = []
  for (const name of await readdir(dir)) {
    if (name.startsWith(TEMP_PREFIX) || listed.has(name) || name === METADATA_FILE) continue
    const info = await lstat(join(dir, name))
    if (info.isFile() && info.ino === ino) twins.push(name)
  }
  return twins
}

function isMissing (err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code
  return code === 'ENOENT' || code === 'ENOTDIR'
}

function notFound (err: unknown, runId: string, name: string): unknown {
  return isMissing(err) ? new BlobNotFoundError(runId, name, err) : err
}
