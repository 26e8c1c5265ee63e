import type { Test } from 'tap'
import { execFile } from 'node:child_process'
import { mkdtemp, open, rm, rmdir, statfs } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)
const FILLER = '.filler'

/**
 * Why a small disk cannot be mounted here (not Linux, not root, no
 * CAP_SYS_ADMIN), or null when it can: tests of a full disk skip with it.
 */
export async function smallDiskProblem (): Promise<string | null> {
  if (process.platform !== 'linux') return `a full disk is a small tmpfs, which needs Linux (this is ${process.platform})`
  const dir = await mkdtemp(join(tmpdir(), 'runstore-disk-probe-'))
  try {
    await run('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir])
    await run('umount', [dir])
    return null
  } catch (err) {
    const reason = ((err as { stderr?: string }).stderr ?? String(err)).trim().split('\n')[0]
    return `a full disk is a small tmpfs, and mounting one failed here (${reason}): run as root or with CAP_SYS_ADMIN`
  } finally {
    await rmdir(dir).catch(() => {})
  }
}

export interface SmallDisk {
  /** where the tmpfs is mounted */
  dir: string
  /** Fills the disk with a filler file (outside any folder the service uses) until `leaveBytes` at most are free. */
  fill: (leaveBytes?: number) => Promise<void>
  /** Removes the filler. */
  free: () => Promise<void>
  /** Bytes a new file could still take. */
  available: () => Promise<number>
  /** Remounts the disk read-only or read-write again (fails while a file on it is open for writing). */
  readOnly: (on: boolean) => Promise<void>
}

/** A tmpfs of `size` (mount's notation: 8m) at a new folder, unmounted and removed when the test ends, failed or not. */
export async function mountSmallDisk (t: Test, size: string): Promise<SmallDisk> {
  const dir = await mkdtemp(join(tmpdir(), 'runstore-small-disk-'))
  await run('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir])
  // Registered before the app the test builds, so it runs after the app closed (tap tears down last-in, first-out).
  t.teardown(async () => {
    // Lazily when something still holds a file open: a failed test must not leave a mount behind.
    await run('umount', [dir]).catch(async () => await run('umount', ['-l', dir]))
    await rm(dir, { recursive: true, force: true })
  })
  const filler = join(dir, FILLER)
  const available = async (): Promise<number> => {
    const info = await statfs(dir)
    return info.bavail * info.bsize
  }
  return {
    dir,
    available,
    fill: async (leaveBytes = 0) => {
      const handle = await open(filler, 'a')
      try {
        const chunk = Buffer.alloc(64 * 1024, 0x5a)
        // A tmpfs takes a write that does not fit in part, then refuses the next.
        for (;;) {
          try {
            await handle.write(chunk)
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break
            throw err
          }
        }
        if (leaveBytes > 0) await handle.truncate(Math.max(0, (await handle.stat()).size - leaveBytes))
      } finally {
        await handle.close()
      }
    },
    free: async () => { await rm(filler, { force: true }) },
    readOnly: async (on) => { await run('mount', ['-o', `remount,${on ? 'ro' : 'rw'}`, dir]) }
  }
}
