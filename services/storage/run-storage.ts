import { access, constants, lstat, mkdir, readdir, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { FileNotFoundError, InvalidStatusTransitionError, MediaNotFoundError, MediaNotReadyError, MediaTypeMismatchError, RunNotFoundError } from '../errors.js'
import { LruCache } from '../cache/lru.js'
import type { MediaType } from '../../schemas/media.js'
import type { ErrorRecord, MediaOutput, MediaSourceRecord, RunMetadata, RunStatus, StageRecord } from '../../schemas/run.js'
import { FolderNotSyncedError, TEMP_PREFIX, fsyncPath, linkWithoutOverwrite, settleAll, tempName, writeFilesDurably } from './durable-fs.js'
import type { MediaIngester, MediaInput, StagedFile } from './ingest.js'
import { KeyedLock } from './keyed-lock.js'
import { probeMediaFile, type MediaProbe } from './probe.js'
import { assertRunId, isRunId, uuidv7 } from './run-id.js'

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

export interface ResolvedFile {
  metadata: RunMetadata
  path: string
  filename: string
  /** set when the file is one of the run's media outputs */
  output: MediaOutput | null
}

/** What a listener hears once a change is on disk: a run's new metadata.json, or its folder gone. */
export type RunChange =
  | { kind: 'written', metadata: RunMetadata }
  | { kind: 'deleted', run_id: string }

/**
 * Called synchronously after each durable metadata write or deletion, in
 * order per run. It cannot fail the write: whatever it throws is dropped, so
 * it must report its own failures.
 */
export type RunChangeListener = (change: RunChange) => void

export interface RunStorageOptions {
  runsDir: string
  ingester: MediaIngester
  metadataCacheEntries?: number
  onChange?: RunChangeListener
}

const TERMINAL: ReadonlySet<RunStatus> = new Set(['completed', 'failed', 'blocked'])

/**
 * One folder per run, written so that a reader or a crash never sees half of
 * anything: folders appear by rename, files by temp + fsync + rename, and all
 * writes to one run are serialised. Reading never creates anything.
 */
export class RunStorage {
  readonly runsDir: string
  readonly #ingester: MediaIngester
  readonly #lock = new KeyedLock()
  readonly #metadata: LruCache<string, RunMetadata>
  readonly #onChange: RunChangeListener | undefined

  constructor (options: RunStorageOptions) {
    this.runsDir = options.runsDir
    this.#ingester = options.ingester
    this.#metadata = new LruCache(options.metadataCacheEntries ?? 10000)
    this.#onChange = options.onChange
  }

  get maxMediaBytes (): number {
    return this.#ingester.maxBytes
  }

  /** Creates the storage root if needed and removes what a crash left half-made. */
  async init (): Promise<{ removed: string[] }> {
    await mkdir(this.runsDir, { recursive: true })
    const removed: string[] = []
    for (const entry of await readdir(this.runsDir, { withFileTypes: true })) {
      if (entry.name.startsWith(TEMP_PREFIX)) {
        await rm(join(this.runsDir, entry.name), { recursive: true, force: true })
        removed.push(entry.name)
      } else if (entry.isDirectory() && isRunId(entry.name)) {
        const dir = join(this.runsDir, entry.name)
        for (const name of await readdir(dir)) {
          if (!name.startsWith(TEMP_PREFIX)) continue
          const info = await lstat(join(dir, name))
          if (info.isFile() && info.nlink > 1) {
            for (const twin of await this.#unlistedTwins(dir, info.ino)) {
              await rm(join(dir, twin), { force: true })
              removed.push(`${entry.name}/${twin}`)
            }
          }
          await rm(join(dir, name), { recursive: true, force: true })
          removed.push(`${entry.name}/${name}`)
        }
      }
    }
    return { removed }
  }

  /**
   * Output names that are the same file as a staged temp file (a crash came
   * between linking it and listing it) but that metadata.json does not list.
   * The shared inode proves they are ours; a file copied in by hand never is.
   */
  async #unlistedTwins (dir: string, ino: number): Promise<string[]> {
    let listed: Set<string>
    try {
      listed = new Set((JSON.parse(await readFile(join(dir, METADATA_FILE), 'utf8')) as RunMetadata).outputs.map((o) => o.filename))
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

  async isWritable (): Promise<boolean> {
    try {
      await access(this.runsDir, constants.W_OK)
      const probe = join(this.runsDir, tempName())
      await writeFile(probe, '')
      await unlink(probe)
      return true
    } catch {
      return false
    }
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
      stages: [],
      outputs: [],
      errors: []
    }
    // Built under a temporary name and renamed, so a run folder is whole or absent.
    const building = join(this.runsDir, tempName())
    await mkdir(building)
    try {
      // Nobody can see the folder yet, so its files need no rename of their own,
      // and once they exist the folder and both files are synced at once.
      const files = [join(building, INPUT_TEXT_FILE), join(building, METADATA_FILE)]
      await settleAll([
        writeFile(files[0]!, input.input_text, { flag: 'wx' }),
        writeFile(files[1]!, serialise(metadata), { flag: 'wx' })
      ])
      await settleAll([...files, building].map(fsyncPath))
      await rename(building, this.#runDir(runId))
      await fsyncPath(this.runsDir)
    } catch (err) {
      await rm(building, { recursive: true, force: true })
      throw err
    }
    this.#metadata.set(runId, metadata)
    this.#notify({ kind: 'written', metadata })
    return metadata
  }

  /** The run's metadata; the returned object is shared and must not be mutated. */
  async getMetadata (runId: string): Promise<RunMetadata> {
    const id = assertRunId(runId)
    return this.#metadata.get(id) ?? await this.#readMetadata(id)
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
      const files: Array<[string, string]> = []
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
   * Takes bytes into the run folder under a temporary name and probes them,
   * outside the run's lock so that many uploads into one run stream in
   * parallel. Fails (and leaves nothing) when the bytes are not supported media.
   */
  async stageMedia (runId: string, input: MediaInput): Promise<StagedMedia> {
    const id = assertRunId(runId)
    await this.getMetadata(id)
    const file = await this.#ingester.stage(input, this.#runDir(id))
    try {
      return { runId: id, file, probe: await probeMediaFile(file.path, file.head) }
    } catch (err) {
      await unlink(file.path).catch(() => {})
      throw err
    }
  }

  async discardStaged (staged: StagedMedia): Promise<void> {
    await unlink(staged.file.path).catch(() => {})
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
      await this.#update(runId, async (metadata, dir) => {
        const sameType = metadata.outputs.filter((o) => o.type === probe.media_type).length
        let ordinal = sameType + 1
        let filename = outputFilename(probe.media_type, ordinal, probe.extension)
        // A stray file of that name (copied in by hand) is never replaced: take the next number.
        for (;;) {
          try {
            await linkWithoutOverwrite(file.path, join(dir, filename))
            break
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
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
      }, {
        rollback: async (dir) => {
          // metadata.json could not be written: the file must not outlive its entry
          if (output !== undefined) await unlink(join(dir, output.filename)).catch(() => {})
        },
        alongside: [file.durable]
      })
    } finally {
      await unlink(file.path).catch(() => {})
    }
    return output!
  }

  /**
   * The index-th output of a type (0-based among that type), or the newest.
   * Distinguishes "not yet" (the run is still going) from "never".
   */
  async getOutput (runId: string, type: MediaType, index?: number): Promise<{ metadata: RunMetadata, output: MediaOutput, path: string }> {
    const metadata = await this.getMetadata(runId)
    const ofType = metadata.outputs.filter((o) => o.type === type)
    const output = index === undefined ? ofType.at(-1) : ofType[index]
    if (output === undefined) {
      if (TERMINAL.has(metadata.status)) throw new MediaNotFoundError(metadata.run_id, type)
      throw new MediaNotReadyError(metadata.run_id, type)
    }
    return { metadata, output, path: join(this.#runDir(metadata.run_id), output.filename) }
  }

  /** A file of the run folder, by a name the metadata lists; no other name reaches the file system. */
  async resolveFile (runId: string, filename: string): Promise<ResolvedFile> {
    const metadata = await this.getMetadata(runId)
    const output = metadata.outputs.find((o) => o.filename === filename) ?? null
    const listed = output !== null || filename === METADATA_FILE || filename === INPUT_TEXT_FILE ||
      (filename === TRANSFORMED_TEXT_FILE && metadata.transformed_text !== null)
    if (!listed) throw new FileNotFoundError(metadata.run_id, filename.slice(0, 120))
    return { metadata, path: join(this.#runDir(metadata.run_id), filename), filename, output }
  }

  /** The seed's get_media_path: where a listed media output lives; an error (not null) for anything else. */
  async getMediaPath (runId: string, filename: string): Promise<string> {
    const file = await this.resolveFile(runId, filename)
    if (file.output === null) throw new FileNotFoundError(file.metadata.run_id, filename.slice(0, 120))
    return file.path
  }

  /** The bytes of a text file of the run (metadata.json, input_text.txt, transformed_text.txt). */
  async readRunFile (file: ResolvedFile): Promise<Buffer> {
    return await readFile(file.path)
  }

  /** Names of the files that make up a run, as listed by its metadata. */
  listFiles (metadata: RunMetadata): string[] {
    return [
      METADATA_FILE,
      INPUT_TEXT_FILE,
      ...(metadata.transformed_text !== null ? [TRANSFORMED_TEXT_FILE] : []),
      ...metadata.outputs.map((o) => o.filename)
    ]
  }

  async deleteRun (runId: string): Promise<void> {
    const id = assertRunId(runId)
    await this.#lock.run(id, async () => {
      await this.getMetadata(id)
      // Renamed first, so the run disappears at once and a crash mid-delete leaves only a temp folder.
      const doomed = join(this.runsDir, tempName())
      await rename(this.#runDir(id), doomed)
      this.#metadata.delete(id)
      this.#notify({ kind: 'deleted', run_id: id })
      await rm(doomed, { recursive: true, force: true })
    })
  }

  /** Run ids on disk, newest first (UUIDv7 sorts by time). */
  async listRunIds (): Promise<string[]> {
    const entries = await readdir(this.runsDir, { withFileTypes: true })
    return entries.filter((e) => e.isDirectory() && isRunId(e.name)).map((e) => e.name).sort().reverse()
  }

  runDir (runId: string): string {
    return this.#runDir(assertRunId(runId))
  }

  #runDir (id: string): string {
    return join(this.runsDir, id)
  }

  async #readMetadata (id: string): Promise<RunMetadata> {
    let text: string
    try {
      text = await readFile(join(this.#runDir(id), METADATA_FILE), 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') throw new RunNotFoundError(id)
      throw err
    }
    const metadata = JSON.parse(text) as RunMetadata
    this.#metadata.set(id, metadata)
    return metadata
  }

  async #update (
    runId: string,
    /** changes the copy it is given; returns other files of the run to write with it */
    mutate: (metadata: RunMetadata, dir: string) => void | Array<[string, string]> | Promise<void>,
    options: {
      /** undoes what mutate did on disk when metadata.json cannot be written */
      rollback?: (dir: string) => Promise<void>
      /** writes the new metadata stands for: it is not renamed into place before these are durable */
      alongside?: ReadonlyArray<Promise<void>>
    } = {}
  ): Promise<RunMetadata> {
    const { rollback, alongside } = options
    const id = assertRunId(runId)
    return await this.#lock.run(id, async () => {
      const current = await this.getMetadata(id)
      const next = structuredClone(current)
      const dir = this.#runDir(id)
      const files = await mutate(next, dir) ?? []
      next.updated_at = new Date().toISOString()
      try {
        await writeFilesDurably(dir, [...files, [METADATA_FILE, serialise(next)]], alongside)
      } catch (err) {
        if (err instanceof FolderNotSyncedError) {
          // metadata.json is already the new one: memory and the index follow it, nothing is rolled back.
          this.#metadata.set(id, next)
          this.#notify({ kind: 'written', metadata: next })
        } else if (rollback !== undefined) {
          await rollback(dir)
        }
        throw err
      }
      this.#metadata.set(id, next)
      this.#notify({ kind: 'written', metadata: next })
      return next
    })
  }

  #notify (change: RunChange): void {
    if (this.#onChange === undefined) return
    try {
      this.#onChange(change)
    } catch {
      // The change is durable already; a listener's failure must not turn it into a failed write.
    }
  }
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
