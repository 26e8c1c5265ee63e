import { FileNotFoundError, InvalidStatusTransitionError, MediaNotFoundError, MediaNotReadyError, MediaTypeMismatchError, RunExistsError, RunNotFoundError } from '../errors.js'
import { LruCache } from '../cache/lru.js'
import type { Readable } from 'node:stream'
import type { MediaType } from '../../schemas/media.js'
import type { OutputChoices } from '../../schemas/output-choices.js'
import type { ErrorRecord, MediaOutput, MediaSourceRecord, RunMetadata, RunStatus, StageRecord } from '../../schemas/run.js'
import { BlobConflictError, BlobExistsError, BlobNotFoundError, UnsyncedWriteError, type BlobFile, type BlobStore, type ByteRange } from './blob/blob-store.js'
import type { MediaIngester, MediaInput, StagedFile } from './ingest.js'
import { KeyedLock } from './keyed-lock.js'
import { probeMediaFile, type MediaProbe } from './probe.js'
import { RunEvents, type RunEvent } from './run-events.js'
import { assertRunId, uuidv7 } from './run-id.js'

export const METADATA_FILE = 'metadata.json'
export const INPUT_TEXT_FILE = 'input_text.txt'
export const TRANSFORMED_TEXT_FILE = 'transformed_text.txt'

export interface CreateRunInput {
  /** 'running' for a run that starts work at once (saves a write) */
  status?: 'created' | 'running'
  schema: string
  execution_mode: string
  input_text: string
  user_id?: string | null
  safety_level?: string | null
  seed?: number | null
  /** which output configs a pipeline run got and why those preferred were passed over */
  output_choices?: OutputChoices
}

export type NewErrorRecord = Omit<ErrorRecord, 'at'> & { at?: string }

/** What one update may change; everything given is written together. */
export interface RunChanges {
  status?: RunStatus
  transformed_text?: string
  stages?: StageRecord[]
  errors?: NewErrorRecord[]
  seed?: number | null
  safety_level?: string | null
}

export interface AddMediaOptions {
  config: string
  backend: string
  /** what the caller expects; contradicting bytes are refused */
  media_type?: MediaType
  /** provenance to record, merged over what the storage knows of the input */
  source?: Partial<MediaSourceRecord> & { kind?: string }
}

/** Bytes accepted into a run folder under a temporary name, probed, not yet listed. */
export interface StagedMedia {
  runId: string
  file: StagedFile
  probe: MediaProbe
}

/** A file of a run, by a name its metadata lists. */
export interface ResolvedFile {
  metadata: RunMetadata
  filename: string
  /** set when the file is one of the run's media outputs */
  output: MediaOutput | null
}

export interface RunStorageOptions {
  /** where the bytes live */
  blobs: BlobStore
  ingester: MediaIngester
  /** told about every durable change; a new RunEvents when not given */
  events?: RunEvents
  metadataCacheEntries?: number
  /** images with more pixels are refused (a decompression bomb for whatever decodes them later); no limit when not given */
  maxImagePixels?: number
  /** told before every write of a run's metadata or its removal (the run index's journal) */
  journal?: WriteJournal
}

/** Notes that a run is about to be written, durably, so a crash before the change event can be caught up. */
export interface WriteJournal {
  /** must not throw: a write never fails for its journal */
  begin: (runId: string) => Promise<void>
}

// Writers of one run on several instances take turns; past this many lost races the write fails rather than spin.
const MAX_WRITE_ATTEMPTS = 8

const TERMINAL: ReadonlySet<RunStatus> = new Set(['completed', 'failed', 'blocked'])

/** Whether a run in this status has ended: its status never changes again. */
export function isFinalStatus (status: RunStatus): boolean {
  return TERMINAL.has(status)
}

/**
 * The run records: metadata.json and the rules it follows (status moves
 * forward only, outputs are only ever added, every write to one run is
 * serialised by a per-run lock), a cache of recent metadata, and an event
 * for every durable change. The bytes live in a BlobStore; callers never
 * see where. Reading never creates anything.
 */
export class RunStorage {
  readonly blobs: BlobStore
  readonly events: RunEvents
  readonly #ingester: MediaIngester
  readonly #maxImagePixels: number | undefined
  readonly #journal: WriteJournal | undefined
  readonly #lock = new KeyedLock()
  readonly #metadata: LruCache<string, RunMetadata>

  constructor (options: RunStorageOptions) {
    this.blobs = options.blobs
    this.events = options.events ?? new RunEvents()
    this.#ingester = options.ingester
    this.#maxImagePixels = options.maxImagePixels
    this.#journal = options.journal
    this.#metadata = new LruCache(options.metadataCacheEntries ?? 10000)
  }

  get maxMediaBytes (): number {
    return this.#ingester.maxBytes
  }

  /** Prepares the store and removes what a crash left half-made (safe while the store serves; see BlobStore.recover). */
  async init (): Promise<{ removed: string[] }> {
    return await this.blobs.recover()
  }

  /** Makes the store ready to take runs, without the crash sweep. */
  async prepare (): Promise<void> {
    await this.blobs.prepare()
  }

  async isWritable (): Promise<boolean> {
    return await this.blobs.isWritable()
  }

  async createRun (input: CreateRunInput): Promise<RunMetadata> {
    const runId = uuidv7()
    const now = new Date().toISOString()
    const metadata: RunMetadata = {
      metadata_version: 1,
      run_id: runId,
      user_id: input.user_id ?? null,
      timestamp: now,
      updated_at: now,
      status: input.status ?? 'created',
      schema: input.schema,
      execution_mode: input.execution_mode,
      safety_level: input.safety_level ?? null,
      input_text: input.input_text,
      transformed_text: null,
      ...(input.seed === undefined ? {} : { seed: input.seed }),
      ...(input.output_choices === undefined ? {} : { output_choices: input.output_choices }),
      stages: [],
      outputs: [],
      errors: []
    }
    await this.#journal?.begin(runId)
    await this.blobs.createRun(runId, [[INPUT_TEXT_FILE, input.input_text], [METADATA_FILE, serialise(metadata)]])
    this.#metadata.set(runId, metadata)
    this.#emit({ type: 'run.created', run_id: runId, metadata })
    return metadata
  }

  /** The run's metadata; the returned object is shared and must not be mutated. */
  /** The run's metadata: from memory when this process is the only writer, else as stored now (another instance may have written it). */
  async getMetadata (runId: string): Promise<RunMetadata> {
    const id = assertRunId(runId)
    return (this.blobs.shared ? undefined : this.#metadata.get(id)) ?? await this.#readMetadata(id)
  }

  /** The run's metadata as stored now, not from the cache (which it refreshes): for readers that must see changes made behind this process's back. */
  async readMetadata (runId: string): Promise<RunMetadata> {
    return await this.#readMetadata(assertRunId(runId))
  }

  async runExists (runId: string): Promise<boolean> {
    try {
      await this.getMetadata(runId)
      return true
    } catch (err) {
      if (err instanceof RunNotFoundError) return false
      throw err
    }
  }

  /**
   * Applies several changes in one durable write of metadata.json (and of
   * transformed_text.txt when the text changes): a pipeline records its
   * stages, errors and status together instead of one write each.
   */
  async update (runId: string, changes: RunChanges): Promise<RunMetadata> {
    return await this.#update(runId, (metadata) => {
      const files: BlobFile[] = []
      if (changes.transformed_text !== undefined) {
        metadata.transformed_text = changes.transformed_text
        files.push([TRANSFORMED_TEXT_FILE, changes.transformed_text])
      }
      for (const stage of changes.stages ?? []) metadata.stages.push(stripInternal(stage))
      const now = new Date().toISOString()
      for (const error of changes.errors ?? []) metadata.errors.push(stripInternal({ ...error, at: error.at ?? now }))
      if (changes.seed !== undefined) metadata.seed = changes.seed
      if (changes.safety_level !== undefined) metadata.safety_level = changes.safety_level
      if (changes.status !== undefined && changes.status !== metadata.status) {
        if (TERMINAL.has(metadata.status) || changes.status === 'created') throw new InvalidStatusTransitionError(metadata.status, changes.status)
        metadata.status = changes.status
      }
      return files
    })
  }

  /**
   * Ends a run that a stopped process left `running`: `failed`, with the
   * given error record, outputs kept. Does nothing (false) when the run is
   * no longer running or was created at or after `createdBefore`.
   */
  async finishInterrupted (runId: string, createdBefore: Date, error: NewErrorRecord): Promise<boolean> {
    let finished = false
    await this.#update(runId, (metadata) => {
      finished = false
      if (metadata.status !== 'running' || Date.parse(metadata.timestamp) >= createdBefore.getTime()) return null
      metadata.status = 'failed'
      metadata.errors.push(stripInternal({ ...error, at: error.at ?? new Date().toISOString() }))
      finished = true
      return []
    })
    return finished
  }

  async setTransformedText (runId: string, text: string): Promise<RunMetadata> {
    return await this.update(runId, { transformed_text: text })
  }

  async setStatus (runId: string, status: RunStatus): Promise<RunMetadata> {
    return await this.update(runId, { status })
  }

  async recordStage (runId: string, stage: StageRecord): Promise<RunMetadata> {
    return await this.update(runId, { stages: [stage] })
  }

  async recordError (runId: string, error: NewErrorRecord): Promise<RunMetadata> {
    return await this.update(runId, { errors: [error] })
  }

  async addMedia (runId: string, input: MediaInput, options: AddMediaOptions): Promise<MediaOutput> {
    return await this.commitMedia(await this.stageMedia(runId, input), options)
  }

  /**
   * Takes bytes into a staging file and probes them, outside the run's lock
   * so that many uploads into one run stream in parallel. Every way media
   * arrives (upload, data URI, URL, a generator) comes through here. Fails
   * (and leaves nothing) when the bytes are not supported media, not whole,
   * or an image over the pixel limit.
   */
  async stageMedia (runId: string, input: MediaInput): Promise<StagedMedia> {
    const id = assertRunId(runId)
    await this.getMetadata(id)
    const file = await this.#ingester.stage(input, this.blobs.stagingPath(id))
    try {
      return { runId: id, file, probe: await probeMediaFile(file.path, { head: file.head, maxImagePixels: this.#maxImagePixels }) }
    } catch (err) {
      await this.blobs.discardStaged(file)
      throw err
    }
  }

  async discardStaged (staged: StagedMedia): Promise<void> {
    await this.blobs.discardStaged(staged.file)
  }

  /** Gives staged bytes their final name and lists them in metadata.json, or removes them. */
  async commitMedia (staged: StagedMedia, options: AddMediaOptions): Promise<MediaOutput> {
    const { runId, file, probe } = staged
    if (options.media_type !== undefined && options.media_type !== probe.media_type) {
      await this.discardStaged(staged)
      throw new MediaTypeMismatchError(options.media_type, `${probe.media_type} (${probe.format})`)
    }
    let output: MediaOutput | undefined
    try {
      await this.#update(runId, async (metadata) => {
        const sameType = metadata.outputs.filter((o) => o.type === probe.media_type).length
        let ordinal = sameType + 1
        let filename = outputFilename(probe.media_type, ordinal, probe.extension)
        // A stray file of that name (copied in by hand) is never replaced: take the next number.
        for (;;) {
          try {
            await this.blobs.putStaged(runId, filename, file)
            break
          } catch (err) {
            if (!(err instanceof BlobExistsError)) throw err
            filename = outputFilename(probe.media_type, ++ordinal, probe.extension)
          }
        }
        output = {
          index: metadata.outputs.length,
          type: probe.media_type,
          filename,
          backend: options.backend,
          config: options.config,
          file_size_bytes: file.size,
          format: probe.format,
          mime_type: probe.mime_type,
          width: probe.width,
          height: probe.height,
          duration_seconds: probe.duration_seconds,
          sha256: file.sha256,
          created_at: new Date().toISOString(),
          source: stripInternal({ ...file.source, ...options.source, kind: options.source?.kind ?? file.source.kind })
        }
        metadata.outputs.push(output)
        return []
      }, {
        rollback: async () => {
          // metadata.json could not be written: the file must not outlive its entry
          if (output !== undefined) await this.blobs.delete(runId, output.filename).catch(() => {})
        },
        alongside: [file.durable],
        // Told after the write, also when only its folder sync failed: the output is listed either way.
        onWritten: (written) => { this.#emit({ type: 'output.added', run_id: runId, metadata: written, output: output! }) }
      })
    } finally {
      await this.blobs.discardStaged(file)
    }
    return output!
  }

  /**
   * The index-th output of a type (0-based among that type), or the newest.
   * Distinguishes "not yet" (the run is still going) from "never".
   */
  async getOutput (runId: string, type: MediaType, index?: number): Promise<{ metadata: RunMetadata, output: MediaOutput }> {
    const metadata = await this.getMetadata(runId)
    const ofType = metadata.outputs.filter((o) => o.type === type)
    const output = index === undefined ? ofType.at(-1) : ofType[index]
    if (output === undefined) {
      if (TERMINAL.has(metadata.status)) throw new MediaNotFoundError(metadata.run_id, type)
      throw new MediaNotReadyError(metadata.run_id, type)
    }
    return { metadata, output }
  }

  /** A file of the run, by a name the metadata lists; no other name reaches the store. */
  async resolveFile (runId: string, filename: string): Promise<ResolvedFile> {
    const metadata = await this.getMetadata(runId)
    const output = metadata.outputs.find((o) => o.filename === filename) ?? null
    const listed = output !== null || filename === METADATA_FILE || filename === INPUT_TEXT_FILE ||
      (filename === TRANSFORMED_TEXT_FILE && metadata.transformed_text !== null)
    if (!listed) throw new FileNotFoundError(metadata.run_id, filename.slice(0, 120))
    return { metadata, filename, output }
  }

  /** The bytes of a listed file (metadata.json, a text file, a small medium). */
  async readFile (file: ResolvedFile): Promise<Buffer> {
    return await this.blobs.read(file.metadata.run_id, file.filename)
  }

  /** A listed file as a stream, or an inclusive byte range of it. */
  async openFile (file: ResolvedFile, range?: ByteRange): Promise<Readable> {
    return await this.blobs.open(file.metadata.run_id, file.filename, range)
  }

  /** Names of the files that make up a run, as listed by its metadata. */
  listFiles (metadata: RunMetadata): string[] {
    return listedFiles(metadata)
  }

  /**
   * Takes a run out of the store's runs, under its lock, announced as
   * run.deleted. `remove` does it to the bytes: the blob store's deleteRun
   * by default, its trashRun for a delete that can be undone.
   */
  async deleteRun (runId: string, remove: (id: string) => Promise<unknown> = async (id) => { await this.blobs.deleteRun(id) }): Promise<void> {
    const id = assertRunId(runId)
    await this.#lock.run(id, async () => {
      await this.getMetadata(id)
      await this.#journal?.begin(id)
      await this.#afterMove(remove(id), () => {
        this.#metadata.delete(id)
        this.#emit({ type: 'run.deleted', run_id: id })
      })
    })
  }

  /**
   * Makes a run one of the store's runs again, under its lock, announced as
   * run.restored: `bring` puts its folder back (from the trash, from an
   * archive). RunExistsError while a run of that id is in the store.
   */
  async restoreRun (runId: string, bring: (id: string) => Promise<unknown>): Promise<RunMetadata> {
    const id = assertRunId(runId)
    return await this.#lock.run(id, async () => {
      if (await this.runExists(id)) throw new RunExistsError(id)
      let metadata: RunMetadata | undefined
      await this.#journal?.begin(id)
      await this.#afterMove(bring(id), async () => {
        this.#metadata.delete(id)
        metadata = await this.#readMetadata(id)
        this.#emit({ type: 'run.restored', run_id: id, metadata })
      })
      return metadata!
    })
  }

  /**
   * Takes runs out of the store into an archive, under all their locks at
   * once: `pack` gets their metadata as stored now (runs gone meanwhile left
   * out) and writes the archive durably, answering which archive holds which
   * run; only then is each of those runs removed and announced as
   * run.archived. A crash in between leaves the runs in the store.
   */
  async archiveRuns (runIds: string[], pack: (runs: RunMetadata[]) => Promise<Map<string, string>>): Promise<Array<{ run_id: string, archive: string }>> {
    const ids = [...new Set(runIds.map((id) => assertRunId(id)))].sort()
    const locked = async (i: number): Promise<Array<{ run_id: string, archive: string }>> => {
      if (i < ids.length) return await this.#lock.run(ids[i]!, async () => await locked(i + 1))
      const runs = (await Promise.all(ids.map(async (id) => await this.readMetadata(id).catch((err: unknown) => {
        if (err instanceof RunNotFoundError) return null
        throw err
      })))).filter((m) => m !== null)
      const packed = await pack(runs)
      const archived: Array<{ run_id: string, archive: string }> = []
      for (const metadata of runs) {
        const archive = packed.get(metadata.run_id)
        if (archive === undefined) continue
        await this.#journal?.begin(metadata.run_id)
        await this.#afterMove(this.blobs.deleteRun(metadata.run_id), () => {
          this.#metadata.delete(metadata.run_id)
          this.#emit({ type: 'run.archived', run_id: metadata.run_id, metadata, archive })
        })
        archived.push({ run_id: metadata.run_id, archive })
      }
      return archived
    }
    return await locked(0)
  }

  /** A run that moved is told of also when only the sync of the move failed: it has moved either way. */
  async #afterMove (move: Promise<unknown>, moved: () => void | Promise<void>): Promise<void> {
    try {
      await move
    } catch (err) {
      if (err instanceof UnsyncedWriteError) await moved()
      throw err
    }
    await moved()
  }

  /** Run ids in the store, newest first (UUIDv7 sorts by time). */
  async listRunIds (): Promise<string[]> {
    return await this.blobs.listRuns()
  }

  async #readMetadata (id: string): Promise<RunMetadata> {
    let text: string
    try {
      text = (await this.blobs.read(id, METADATA_FILE)).toString('utf8')
    } catch (err) {
      if (err instanceof BlobNotFoundError) throw new RunNotFoundError(id)
      throw err
    }
    const metadata = JSON.parse(text) as RunMetadata
    this.#metadata.set(id, metadata)
    return metadata
  }

  async #update (
    runId: string,
    /** changes the copy it is given; returns other files of the run to write with it, or null for "no change, write nothing" */
    mutate: (metadata: RunMetadata) => BlobFile[] | null | Promise<BlobFile[] | null>,
    options: {
      /** undoes what mutate did in the store when metadata.json cannot be written */
      rollback?: () => Promise<void>
      /** writes the new metadata stands for: it is not put in place before these are durable */
      alongside?: ReadonlyArray<Promise<void>>
      /** after run.updated, for events that say more about the same write */
      onWritten?: (metadata: RunMetadata) => void
    } = {}
  ): Promise<RunMetadata> {
    const { rollback, alongside, onWritten } = options
    const id = assertRunId(runId)
    return await this.#lock.run(id, async () => {
      let current = await this.getMetadata(id)
      for (let attempt = 1; ; attempt++) {
        const next = structuredClone(current)
        const files = await mutate(next)
        if (files === null) return current
        next.updated_at = new Date().toISOString()
        const written = (): void => {
          this.#metadata.set(id, next)
          this.#emit({ type: 'run.updated', run_id: id, metadata: next, previous_status: current.status })
          onWritten?.(next)
        }
        await this.#journal?.begin(id)
        try {
          await this.blobs.writeFiles(id, [...files, [METADATA_FILE, serialise(next)]], alongside)
        } catch (err) {
          // metadata.json is already the new one: memory and the subscribers follow it, nothing is rolled back.
          if (err instanceof UnsyncedWriteError) written()
          else if (rollback !== undefined) await rollback()
          // Another instance wrote the run meanwhile (a shared store): the change is applied again to what it wrote.
          if (err instanceof BlobConflictError && attempt < MAX_WRITE_ATTEMPTS) {
            current = await this.#readMetadata(id)
            continue
          }
          throw err
        }
        written()
        return next
      }
    })
  }

  #emit (event: RunEvent): void {
    this.events.emit(event)
  }
}

/** Names of the files that make up a run, as listed by its metadata: what a reader, an export or a check may expect. */
export function listedFiles (metadata: RunMetadata): string[] {
  return [
    METADATA_FILE,
    INPUT_TEXT_FILE,
    ...(metadata.transformed_text !== null ? [TRANSFORMED_TEXT_FILE] : []),
    ...metadata.outputs.map((o) => o.filename)
  ]
}

export function outputFilename (type: MediaType, ordinal: number, extension: string): string {
  return ordinal <= 1 ? `output_${type}.${extension}` : `output_${type}_${ordinal}.${extension}`
}

/** Internal fields (names starting with `_`) never reach metadata.json, at any depth. */
function stripInternal<T> (value: T): T {
  if (Array.isArray(value)) return value.map(stripInternal) as T
  if (value === null || typeof value !== 'object' || Buffer.isBuffer(value)) return value
  const clean: Record<string, unknown> = {}
  for (const [key, inner] of Object.entries(value)) {
    if (!key.startsWith('_') && inner !== undefined) clean[key] = stripInternal(inner)
  }
  return clean as T
}

function serialise (metadata: RunMetadata): string {
  return JSON.stringify(stripInternal(metadata), null, 2) + '\n'
}
