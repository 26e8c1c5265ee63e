import { open, rename, unlink, link } from 'node:fs/promises'
import { dirname, join, basename } from 'node:path'
import { randomBytes } from 'node:crypto'

/** Names of everything half-made; the startup sweep removes whatever carries it. */
export const TEMP_PREFIX = '.tmp-'

export function tempName (): string {
  return `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`
}

export async function fsyncPath (path: string): Promise<void> {
  const handle = await open(path, 'r')
  try {
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
  const dir = dirname(path)
  const temp = join(dir, `${tempName()}-${basename(path)}`)
  const handle = await open(temp, 'wx')
  try {
    await handle.writeFile(data)
    await handle.sync()
  } catch (err) {
    await handle.close()
    await unlink(temp).catch(() => {})
    throw err
  }
  await handle.close()
  try {
    await rename(temp, path)
  } catch (err) {
    await unlink(temp).catch(() => {})
    throw err
  }
  await fsyncPath(dir)
}

/**
 * Moves a complete temp file to a name that must not exist yet. link() fails
 * with EEXIST instead of replacing, so a stored file can never be overwritten.
 */
export async function publishWithoutOverwrite (tempPath: string, finalPath: string): Promise<void> {
  await link(tempPath, finalPath)
  await unlink(tempPath)
}
