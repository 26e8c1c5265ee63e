import { open, rename, unlink, link } from 'node:fs/promises'
import { dirname, join, basename } from 'node:path'
import { randomBytes } from 'node:crypto'
import { UnsyncedWriteError } from './blob-store.js'

/** Names of everything half-made; the startup sweep removes whatever carries it. */
export const TEMP_PREFIX = '.tmp-'

/**
 * A half-made name: the prefix, the tag of whoever writes it, a random part.
 * The tag lets a crash sweep that runs while its own store writes leave that
 * store's files alone and take only what others (a stopped process) left.
 */
export function tempName (tag: string = newTempTag()): string {
  return `${TEMP_PREFIX}${tag}-${randomBytes(6).toString('hex')}`
}

export function newTempTag (): string {
  return randomBytes(4).toString('hex')
}

/** Whether `name` is a half-made file or folder of the writer with this tag. */
export function isOwnTemp (name: string, tag: string): boolean {
  return name.startsWith(`${TEMP_PREFIX}${tag}-`)
}

export async function fsyncPath (path: string): Promise<void> {
  const handle = await open(path, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/** Writes and fsyncs a new file (it must not exist); for folders nobody can see yet. */
export async function writeFileSynced (path: string, data: string | Buffer): Promise<void> {
  const handle = await open(path, 'wx')
  try {
    await handle.writeFile(data)
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/**
 * The file at `path` holds either its old content or `data`, never a mix,
 * even across a crash: temp file, fsync, rename, fsync of the folder.
 */
export async function writeFileDurably (path: string, data: string | Buffer): Promise<void> {
  await writeFilesDurably(dirname(path), [[basename(path), data]])
}

/**
 * writeFileDurably for several files of one folder, with one fsync of the
 * folder for all. Files are renamed into place in the order given, so the
 * one that makes the others count (metadata.json) goes last.
 */
export async function writeFilesDurably (
  dir: string,
  files: ReadonlyArray<readonly [string, string | Buffer]>,
  /** other writes the files stand for (a media file that metadata.json lists): none is renamed before these settle */
  alongside: ReadonlyArray<Promise<void>> = [],
  /** the writer's tag in the temp names (tempName) */
  tag?: string
): Promise<void> {
  const temps = files.map(([name]) => join(dir, `${tempName(tag)}-${name}`))
  let renamed = 0
  try {
    // The files are synced together: the disk's flush latency is paid once, not once per file.
    await settleAll([...alongside, ...files.map(async ([, data], i) => { await writeFileSynced(temps[i]!, data) })])
    for (const [i, [name]] of files.entries()) {
      await rename(temps[i]!, join(dir, name))
      renamed++
    }
  } finally {
    for (const temp of temps.slice(renamed)) await unlink(temp).catch(() => {})
  }
  try {
    await fsyncPath(dir)
  } catch (err) {
    throw new FolderNotSyncedError(dir, err)
  }
}

/**
 * The files are in place (readers see them), but the folder's fsync failed:
 * whether the renames survive a crash is unknown. Nothing must be undone.
 */
export class FolderNotSyncedError extends UnsyncedWriteError {
  constructor (dir: string, cause: unknown) {
    super(`the files in ${dir} are written, but the folder could not be synced`, cause)
    this.name = 'FolderNotSyncedError'
  }
}

/**
 * Waits for every write, then fails with the first failure: cleanup must not
 * start while another write of the same batch is still going.
 */
export async function settleAll (writes: ReadonlyArray<Promise<void>>): Promise<void> {
  const failed = (await Promise.allSettled(writes)).find((r) => r.status === 'rejected')
  if (failed !== undefined) throw failed.reason
}

/**
 * Gives a complete temp file a second name that must not exist yet. link()
 * fails with EEXIST instead of replacing, so a stored file can never be
 * overwritten. The temp name stays until the caller has durably listed the
 * file and removes it: a temp file with two links found after a crash marks
 * an output whose listing may never have been written.
 */
export async function linkWithoutOverwrite (tempPath: string, finalPath: string): Promise<void> {
  await link(tempPath, finalPath)
}
