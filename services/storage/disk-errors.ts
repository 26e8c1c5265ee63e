import { InsufficientStorageError, StorageUnavailableError } from '../errors.js'

// No room: the file system or the user's quota is full. Freeing space fixes it, and the
// same request then succeeds: 507, as HTTP has it for a server that cannot store a representation.
const NO_ROOM = new Set(['ENOSPC', 'EDQUOT'])
// No writes at all: the file system was remounted read-only (ext4 does that after an I/O
// error) or the device fails. Nothing is wrong with the request; the service is unavailable
// until someone repairs the disk: 503, which is also what /ready answers then.
const NO_WRITES = new Set(['EROFS', 'EIO'])

/** Whether a disk refused a write (full, read-only, failing), as the file system or SQLite reports it. */
export function isDiskRefusal (err: unknown): boolean {
  const code = errorCode(err)
  return code !== undefined && (NO_ROOM.has(code) || NO_WRITES.has(code) || /^SQLITE_(FULL|READONLY|IOERR)/.test(code))
}

/**
 * What a failed write to the local disk means to a client: 507
 * INSUFFICIENT_STORAGE or 503 STORAGE_UNAVAILABLE, with plain words and the
 * original error (errno, path) as the cause, for the log only. Any other
 * error is returned unchanged, so this may be applied more than once.
 */
export function diskWriteError (err: unknown): unknown {
  const code = errorCode(err)
  if (code === undefined) return err
  if (NO_ROOM.has(code)) return new InsufficientStorageError({ cause: err })
  if (NO_WRITES.has(code)) return new StorageUnavailableError({ cause: err })
  return err
}

/** Runs a write to the local disk; its failure is thrown as diskWriteError describes it. */
export async function writingToDisk<T> (write: () => Promise<T>): Promise<T> {
  try {
    return await write()
  } catch (err) {
    throw diskWriteError(err)
  }
}

function errorCode (err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null | undefined)?.code
  return typeof code === 'string' ? code : undefined
}
