import type { Readable } from 'node:stream'

/**
 * Where the bytes of runs live: one namespace per run (a folder on disk, a
 * key prefix in a bucket) holding metadata.json, the texts and the media.
 * The run records (services/storage/run-storage.ts) decide what is written
 * and when; a blob store only knows how to write it so that a reader or a
 * crash never sees half of anything. Nothing here may assume link, rename
 * or a file descriptor: a driver for an object store implements the same
 * promises with its own means (conditional writes, metadata.json last).
 */
export interface BlobStore {
  /** for logs: which store this is (e.g. `local:/data/runs`) */
  readonly description: string
  /**
   * Other processes write the same runs (a bucket that several instances
   * use): what this one read a moment ago may be out of date.
   */
  readonly shared: boolean

  /** Makes the store ready to take runs (creates the root): quick, whatever the number of runs. */
  prepare: () => Promise<void>

  /**
   * Removes what interrupted writes of other processes (or of earlier
   * stores) left, and returns it; prepares the store first. It reads every
   * run, so a service runs it in the background: it leaves this store's own
   * half-made files alone.
   */
  recover: () => Promise<{ removed: string[] }>

  /** Ids of the runs in the store, newest first (UUIDv7 sorts by time). */
  listRuns: () => Promise<string[]>

  /**
   * Makes a new run with these files, all or nothing: a reader sees the
   * run with every file or not at all. The last file (metadata.json) is the
   * one that makes the run exist. BlobExistsError when the run exists (nothing of it is replaced).
   */
  createRun: (runId: string, files: readonly BlobFile[]) => Promise<void>

  /**
   * Writes files of an existing run, each whole (its old or its new bytes,
   * never a mix, across a crash too), in the order given: the last one
   * (metadata.json) makes the others count. None is put in place before the
   * `alongside` writes settle (a staged media file's flush to disk).
   * UnsyncedWriteError: in place, durability unknown; nothing may be undone.
   * A store shared by several processes writes metadata.json only over the
   * version it last read or wrote for this run; BlobConflictError when
   * another writer came between (nothing of metadata.json changed: read it
   * again and apply the change to what is there now).
   */
  writeFiles: (runId: string, files: readonly BlobFile[], alongside?: ReadonlyArray<Promise<void>>) => Promise<void>

  /**
   * A local path where staging code may write a new file for this run
   * (under a name the crash sweep recognises as half-made).
   */
  stagingPath: (runId: string) => string

  /**
   * Gives a complete staged file a name in the run. It never replaces:
   * BlobExistsError when the name is taken. The staged file stays until
   * discardStaged, so a crash before the run lists it can be recognised.
   */
  putStaged: (runId: string, name: string, staged: StagedBlob) => Promise<void>

  /** Removes a staged file (after it was put in place and listed, or instead). */
  discardStaged: (staged: Pick<StagedBlob, 'path'>) => Promise<void>

  /** The whole content of a file; BlobNotFoundError when there is none. */
  read: (runId: string, name: string) => Promise<Buffer>

  /** The content (or an inclusive byte range of it) as a stream; BlobNotFoundError when there is none. */
  open: (runId: string, name: string, range?: ByteRange) => Promise<Readable>

  /**
   * A URL from which a client may fetch the file itself for a while (a
   * presigned URL of an object store), answering with these headers; null
   * when the store serves no such URLs and the bytes come through the service.
   */
  directUrl: (runId: string, name: string, headers: DirectUrlHeaders) => Promise<string | null>

  /** Size and time of a file, or null when there is none. */
  stat: (runId: string, name: string) => Promise<BlobStat | null>

  /** Names of the run's files, half-made ones left out; empty for an unknown run. */
  list: (runId: string) => Promise<string[]>

  /** Removes one file of a run; nothing happens when it is not there. */
  delete: (runId: string, name: string) => Promise<void>

  /** Removes a run so that it disappears at once (a crash mid-way leaves nothing that is listed). */
  deleteRun: (runId: string) => Promise<void>

  /**
   * Moves a run out of the runs into the trash, whole and at once: after a
   * crash it is either a run or in the trash, never half of each. Its files
   * stay byte for byte; when it was trashed is kept beside them, not in them.
   * BlobNotFoundError when there is no such run. UnsyncedWriteError: moved,
   * whether the move survives a crash is unknown.
   */
  trashRun: (runId: string, deletedAt: Date) => Promise<TrashedRun>

  /** The runs in the trash, the most recently trashed first; never among listRuns. */
  listTrash: () => Promise<TrashedRun[]>

  /** A file of a trashed run (its metadata.json, to describe it); BlobNotFoundError when there is none. */
  readTrashed: (entry: TrashedRun, name: string) => Promise<Buffer>

  /**
   * Moves a trashed run back among the runs, whole and at once, its files as
   * they were (without what a write cut off by the move left half-made).
   * BlobExistsError when a run of that id exists (it is never replaced),
   * BlobNotFoundError when the entry is no longer in the trash.
   * UnsyncedWriteError: back, whether that survives a crash is unknown.
   */
  restoreTrashed: (entry: TrashedRun) => Promise<void>

  /** Removes a trashed run for good, so that it disappears at once; false when it was gone already. */
  removeTrashed: (entry: TrashedRun) => Promise<boolean>

  /** Whether a small write succeeds now. */
  isWritable: () => Promise<boolean>

  /** Bytes still free for new runs and the size of the volume; null when the store cannot tell. */
  space: () => Promise<BlobSpace | null>
}

export interface BlobSpace {
  /** what this process may still write (a disk's blocks reserved for root left out) */
  availableBytes: number
  totalBytes: number
}

/** A run in the trash; the pair names one entry (a run trashed, restored and trashed again has had two). */
export interface TrashedRun {
  runId: string
  deletedAt: Date
}

export interface DirectUrlHeaders {
  contentType: string
  contentDisposition: string
  cacheControl: string
}

export type BlobFile = readonly [name: string, data: string | Buffer]

/** Inclusive, like HTTP's Range. */
export interface ByteRange {
  start: number
  end: number
}

export interface BlobStat {
  size: number
  modified: Date
}

/** A complete file written to local disk by the staging code, not yet part of a run. */
export interface StagedBlob {
  path: string
  size: number
  /** settles once the bytes are on disk */
  durable: Promise<void>
}

export class BlobNotFoundError extends Error {
  readonly code = 'BLOB_NOT_FOUND'
  /** without a name: there is no such run (or trashed run) at all */
  constructor (runId: string, name?: string, cause?: unknown) {
    super(name === undefined ? `no run ${runId} is stored there` : `run ${runId} has no stored file ${name}`, { cause })
    this.name = 'BlobNotFoundError'
  }
}

export class BlobExistsError extends Error {
  readonly code = 'BLOB_EXISTS'
  /** without a name: the run itself exists */
  constructor (runId: string, name?: string) {
    super(name === undefined ? `run ${runId} exists already` : `run ${runId} already has a file ${name}`)
    this.name = 'BlobExistsError'
  }
}

/** metadata.json changed since this store last read or wrote it: another process wrote the run meanwhile. */
export class BlobConflictError extends Error {
  readonly code = 'BLOB_CONFLICT'
  constructor (runId: string, cause?: unknown) {
    super(`run ${runId} was written by another process meanwhile`, { cause })
    this.name = 'BlobConflictError'
  }
}

/** The write is in place (readers see it), but whether it survives a crash is unknown: nothing must be undone. */
export class UnsyncedWriteError extends Error {
  constructor (message: string, cause: unknown) {
    super(message, { cause })
    this.name = 'UnsyncedWriteError'
  }
}
