import { hostname } from 'node:os'
import { mkdir, open, readFile, unlink } from 'node:fs/promises'
import { join } from 'node:path'

/** The lock file beside the runs: a name no run id can have, and no temp name the crash sweep would take. */
export const STORE_LOCK_FILE = '.runstore.lock'

/** Who holds a store's lock, as its lock file says. */
export interface StoreLockHolder {
  pid: number
  hostname: string
  /** when the holder took the lock (ISO 8601) */
  started_at: string
  /** what holds it: `server`, `runstore archive`, … */
  role: string
}

/** Another process that is alive holds the store: a write that needs the store to itself must wait. */
export class StoreLockedError extends Error {
  readonly holder: StoreLockHolder
  constructor (path: string, holder: StoreLockHolder) {
    super(`the store is in use by ${holder.role} (pid ${holder.pid} on ${holder.hostname}, since ${holder.started_at}; lock ${path}): stop it first, or use the admin routes of the running service`)
    this.name = 'StoreLockedError'
    this.holder = holder
  }
}

// Holders inside this process, by lock path: a test or a tool that opens one store twice shares its lock.
const heldHere = new Map<string, { count: number }>()

/**
 * `RUNS_DIR/.runstore.lock`: the server holds it while it runs, and the
 * maintenance commands that write (archive, prune, restore, reindex) take
 * it, so that they never change the store behind a running service's back
 * (its index, its caches). It names the holder's pid and start time; a lock
 * whose pid is no longer alive on this host (a kill -9, a power cut) is
 * taken over. Reading commands (verify, stats) do not need it.
 */
export class StoreLock {
  readonly path: string
  #released = false

  private constructor (path: string) {
    this.path = path
  }

  /** Takes the lock of the store at `runsDir` (creating the folder); StoreLockedError while another live process holds it. */
  static async acquire (runsDir: string, role: string): Promise<StoreLock> {
    await mkdir(runsDir, { recursive: true })
    const path = join(runsDir, STORE_LOCK_FILE)
    const shared = heldHere.get(path)
    if (shared !== undefined) {
      shared.count++
      return new StoreLock(path)
    }
    const holder: StoreLockHolder = { pid: process.pid, hostname: hostname(), started_at: new Date().toISOString(), role }
    // Two attempts: the second after a stale lock was removed. Whoever creates the file first (O_EXCL) holds it.
    for (let attempt = 0; ; attempt++) {
      try {
        const handle = await open(path, 'wx')
        try {
          await handle.writeFile(JSON.stringify(holder) + '\n')
          await handle.sync()
        } catch (err) {
          await unlink(path).catch(() => {})
          throw err
        } finally {
          await handle.close()
        }
        heldHere.set(path, { count: 1 })
        return new StoreLock(path)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err
      }
      const current = await StoreLock.holder(runsDir)
      // A lock naming this very process is one it left behind (its holder was never released): not a rival.
      if (current !== null && current.pid !== process.pid && isAlive(current)) throw new StoreLockedError(path, current)
      await unlink(path).catch((err: unknown) => { if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err })
    }
  }

  /** Who holds the lock of the store at `runsDir`, whether alive or not; null when nobody does (or the file is unreadable, which counts as stale). */
  static async holder (runsDir: string): Promise<StoreLockHolder | null> {
    try {
      const parsed = JSON.parse(await readFile(join(runsDir, STORE_LOCK_FILE), 'utf8')) as Partial<StoreLockHolder>
      if (typeof parsed.pid !== 'number' || !Number.isInteger(parsed.pid) || parsed.pid <= 0) return null
      return { pid: parsed.pid, hostname: String(parsed.hostname ?? ''), started_at: String(parsed.started_at ?? ''), role: String(parsed.role ?? 'unknown') }
    } catch {
      return null
    }
  }

  /** Gives the lock back (the file goes when the last holder in this process releases it); a second call does nothing. */
  async release (): Promise<void> {
    if (this.#released) return
    this.#released = true
    const shared = heldHere.get(this.path)
    if (shared === undefined || --shared.count > 0) return
    heldHere.delete(this.path)
    await unlink(this.path).catch(() => {})
  }
}

/** Whether the holder still runs: only a process on this host can be asked; one on another host counts as alive. */
function isAlive (holder: StoreLockHolder): boolean {
  if (holder.hostname !== hostname()) return true
  try {
    process.kill(holder.pid, 0)
    return true
  } catch (err) {
    // EPERM: it exists, but belongs to another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
