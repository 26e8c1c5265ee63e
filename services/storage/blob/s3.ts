import { createReadStream } from 'node:fs'
import { mkdir, readdir, rm, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { CopyObjectCommand, DeleteObjectCommand, DeleteObjectsCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import { LruCache } from '../../cache/lru.js'
import { isRunId } from '../run-id.js'
import { BlobConflictError, BlobExistsError, BlobNotFoundError, type BlobFile, type BlobStat, type BlobStore, type ByteRange, type DirectUrlHeaders, type StagedBlob, type TrashedRun } from './blob-store.js'
import { TEMP_PREFIX, isOwnTemp, newTempTag, settleAll, tempName } from './durable-fs.js'
import { byTrashTime, fileName, parseTrashEntry, trashEntryName } from './trash-entry.js'

// The object whose presence makes a run exist; the run records own its format.
const METADATA_FILE = 'metadata.json'
// Not a run id and not an output name: listRuns and the sweep never take it for a run.
const TRASH_PREFIX = '.trash/'
// Objects above this go up in parts (S3 takes at most 5 GiB in one PUT; parts of 8 MiB keep memory small).
const PART_BYTES = 8 * 1024 * 1024

export interface S3BlobStoreOptions {
  client: S3Client
  bucket: string
  /** key prefix of the runs (`runs` → `runs/<run_id>/metadata.json`); empty for the bucket's root */
  prefix?: string
  /** local folder for media on its way in (probed there before it is uploaded) */
  stagingDir: string
  /** objects of runs without metadata.json, and unlisted outputs, are swept once they are this old (writes of other instances in flight are younger) */
  sweepGraceMs?: number
  /** seconds a presigned media URL is valid; 0: no direct URLs, the bytes come through the service */
  directUrlSeconds?: number
  /** runs whose metadata.json version (ETag) is remembered for conditional writes */
  versionEntries?: number
}

interface ListedObject {
  key: string
  modified: Date
}

/**
 * Runs as key prefixes in an S3 bucket: `<prefix>/<run_id>/<file>`. No object
 * store can rename, so the promises of BlobStore are kept by order and by
 * conditional writes: a run's files go up first and its metadata.json last
 * (a run without it is invisible, and swept once older than the grace
 * period); media and new runs are written with If-None-Match: * so nothing
 * is ever replaced; metadata.json is replaced only with If-Match on the
 * version this store last saw, so two instances never lose each other's
 * outputs (BlobConflictError, and the run records apply their change again).
 * Deleted runs are copied under `<prefix>/.trash/` and their originals
 * removed, metadata.json first.
 */
export class S3BlobStore implements BlobStore {
  readonly description: string
  readonly shared = true
  readonly #client: S3Client
  readonly #bucket: string
  readonly #prefix: string
  readonly #stagingDir: string
  readonly #graceMs: number
  readonly #directUrlSeconds: number
  readonly #tag = newTempTag()
  /** run id → ETag of its metadata.json as this store last read or wrote it */
  readonly #versions: LruCache<string, string>

  constructor (options: S3BlobStoreOptions) {
    this.#client = options.client
    this.#bucket = options.bucket
    const trimmed = (options.prefix ?? '').replace(/^\/+|\/+$/g, '')
    this.#prefix = trimmed === '' ? '' : `${trimmed}/`
    this.#stagingDir = options.stagingDir
    this.#graceMs = options.sweepGraceMs ?? 60 * 60 * 1000
    this.#directUrlSeconds = options.directUrlSeconds ?? 0
    this.#versions = new LruCache(options.versionEntries ?? 100_000)
    this.description = `s3://${options.bucket}/${this.#prefix}`
  }

  async prepare (): Promise<void> {
    await mkdir(this.#stagingDir, { recursive: true })
    await this.#client.send(new HeadBucketCommand({ Bucket: this.#bucket }))
  }

  async recover (): Promise<{ removed: string[] }> {
    await this.prepare()
    const removed: string[] = []
    for (const name of await readdir(this.#stagingDir)) {
      if (!name.startsWith(TEMP_PREFIX) || isOwnTemp(name, this.#tag)) continue
      await rm(join(this.#stagingDir, name), { force: true })
      removed.push(name)
    }
    const cutoff = Date.now() - this.#graceMs
    const groups = new Map<string, ListedObject[]>()
    for (const object of await this.#listAll(this.#prefix)) {
      const relative = object.key.slice(this.#prefix.length)
      const slash = relative.lastIndexOf('/')
      if (slash < 0) continue
      const group = relative.slice(0, slash)
      if (!isRunId(group) && !isTrashEntry(group)) continue
      groups.set(group, [...(groups.get(group) ?? []), object])
    }
    for (const [group, objects] of groups) {
      const doomed = await this.#sweepable(group, objects, cutoff)
      await this.#deleteKeys(doomed.map((o) => o.key))
      for (const object of doomed) removed.push(object.key.slice(this.#prefix.length))
    }
    return { removed }
  }

  async listRuns (): Promise<string[]> {
    const ids: string[] = []
    for (const { key } of await this.#listAll(this.#prefix)) {
      const relative = key.slice(this.#prefix.length)
      const [runId, name, ...more] = relative.split('/')
      if (more.length === 0 && name === METADATA_FILE && isRunId(runId!)) ids.push(runId!)
    }
    return ids.sort().reverse()
  }

  async createRun (runId: string, files: readonly BlobFile[]): Promise<void> {
    const id = checkedRunId(runId)
    const last = files.at(-1)
    // Every object only where none is: an existing run (or a stranger's leftovers) is never written over.
    await settleAll(files.slice(0, -1).map(async ([name, data]) => { await this.#putNew(id, name, data) }))
    if (last !== undefined) await this.#putNew(id, last[0], last[1])
  }

  async writeFiles (runId: string, files: readonly BlobFile[], alongside: ReadonlyArray<Promise<void>> = []): Promise<void> {
    const id = checkedRunId(runId)
    const metadata = files.filter(([name]) => name === METADATA_FILE)
    await settleAll([...alongside, ...files.filter(([name]) => name !== METADATA_FILE).map(async ([name, data]) => {
      await this.#client.send(new PutObjectCommand({ Bucket: this.#bucket, Key: this.#key(id, name), Body: data }))
    })])
    for (const [, data] of metadata) await this.#putMetadata(id, data)
  }

  stagingPath (runId: string): string {
    checkedRunId(runId)
    return join(this.#stagingDir, tempName(this.#tag))
  }

  async putStaged (runId: string, name: string, staged: StagedBlob): Promise<void> {
    const key = this.#key(checkedRunId(runId), name)
    const upload = new Upload({
      client: this.#client,
      partSize: PART_BYTES,
      queueSize: 2,
      leavePartsOnError: false,
      // If-None-Match goes with the PUT or with CompleteMultipartUpload: the name is taken by whoever finishes first.
      params: { Bucket: this.#bucket, Key: key, Body: createReadStream(staged.path), ContentLength: staged.size, IfNoneMatch: '*' }
    })
    try {
      await upload.done()
    } catch (err) {
      if (isConflict(err)) throw new BlobExistsError(runId, name)
      throw err
    }
  }

  async discardStaged (staged: Pick<StagedBlob, 'path'>): Promise<void> {
    await unlink(staged.path).catch(() => {})
  }

  async read (runId: string, name: string): Promise<Buffer> {
    const id = checkedRunId(runId)
    const answer = await this.#get(id, name, this.#key(id, name))
    const bytes = Buffer.from(await answer.Body!.transformToByteArray())
    if (name === METADATA_FILE && answer.ETag !== undefined) this.#versions.set(id, answer.ETag)
    return bytes
  }

  async open (runId: string, name: string, range?: ByteRange): Promise<Readable> {
    const id = checkedRunId(runId)
    const answer = await this.#get(id, name, this.#key(id, name), range === undefined ? undefined : `bytes=${range.start}-${range.end}`)
    return answer.Body as Readable
  }

  async directUrl (runId: string, name: string, headers: DirectUrlHeaders): Promise<string | null> {
    if (this.#directUrlSeconds === 0) return null
    const command = new GetObjectCommand({
      Bucket: this.#bucket,
      Key: this.#key(checkedRunId(runId), name),
      ResponseContentType: headers.contentType,
      ResponseContentDisposition: headers.contentDisposition,
      ResponseCacheControl: headers.cacheControl
    })
    return await getSignedUrl(this.#client, command, { expiresIn: this.#directUrlSeconds })
  }

  async stat (runId: string, name: string): Promise<BlobStat | null> {
    try {
      const head = await this.#client.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: this.#key(checkedRunId(runId), name) }))
      return { size: head.ContentLength ?? 0, modified: head.LastModified ?? new Date(0) }
    } catch (err) {
      if (isMissing(err)) return null
      throw err
    }
  }

  async list (runId: string): Promise<string[]> {
    const prefix = this.#key(checkedRunId(runId), '')
    return (await this.#listAll(prefix)).map((o) => o.key.slice(prefix.length)).filter((name) => !name.includes('/')).sort()
  }

  async delete (runId: string, name: string): Promise<void> {
    await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: this.#key(checkedRunId(runId), name) }))
  }

  async deleteRun (runId: string): Promise<void> {
    await this.#removeGroup(this.#key(checkedRunId(runId), ''))
    this.#versions.delete(runId)
  }

  async trashRun (runId: string, deletedAt: Date): Promise<TrashedRun> {
    const entry = { runId: checkedRunId(runId), deletedAt }
    const from = this.#key(runId, '')
    const names = (await this.#listAll(from)).map((o) => o.key.slice(from.length))
    if (!names.includes(METADATA_FILE)) throw new BlobNotFoundError(runId)
    // Copies first, metadata.json last: the entry exists once it is whole; then the run disappears with its metadata.json.
    await this.#copyGroup(from, this.#trashKey(entry, ''), names)
    await this.#removeGroup(from)
    this.#versions.delete(runId)
    return entry
  }

  async listTrash (): Promise<TrashedRun[]> {
    const prefix = `${this.#prefix}${TRASH_PREFIX}`
    const entries: TrashedRun[] = []
    for (const { key } of await this.#listAll(prefix)) {
      const [name, file, ...more] = key.slice(prefix.length).split('/')
      const entry = parseTrashEntry(name!)
      if (entry !== null && file === METADATA_FILE && more.length === 0) entries.push(entry)
    }
    return entries.sort(byTrashTime)
  }

  async readTrashed (entry: TrashedRun, name: string): Promise<Buffer> {
    const answer = await this.#get(entry.runId, name, this.#trashKey(entry, name))
    return Buffer.from(await answer.Body!.transformToByteArray())
  }

  async restoreTrashed (entry: TrashedRun): Promise<void> {
    const from = this.#trashKey(entry, '')
    const to = this.#key(entry.runId, '')
    if ((await this.#listAll(to)).length > 0) throw new BlobExistsError(entry.runId)
    const names = (await this.#listAll(from)).map((o) => o.key.slice(from.length))
    if (!names.includes(METADATA_FILE)) throw new BlobNotFoundError(entry.runId)
    // What a write cut off by the trashing left (an output its metadata.json does not list) stays behind.
    const listed = listedNames(await this.readTrashed(entry, METADATA_FILE))
    await this.#copyGroup(from, to, names.filter((name) => listed === null || listed.has(name)))
    await this.#removeGroup(from)
  }

  async removeTrashed (entry: TrashedRun): Promise<boolean> {
    const prefix = this.#trashKey(entry, '')
    if ((await this.#listAll(prefix)).length === 0) return false
    await this.#removeGroup(prefix)
    return true
  }

  async isWritable (): Promise<boolean> {
    const key = `${this.#prefix}${tempName(this.#tag)}`
    try {
      // Without a length the SDK takes the empty body for a stream and warns on the console at every probe (/ready).
      await this.#client.send(new PutObjectCommand({ Bucket: this.#bucket, Key: key, Body: '', ContentLength: 0 }))
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: key }))
      return true
    } catch {
      return false
    }
  }

  async space (): Promise<null> {
    // A bucket has no size to fill.
    return null
  }

  async #putNew (runId: string, name: string, data: string | Buffer): Promise<void> {
    try {
      const answer = await this.#client.send(new PutObjectCommand({ Bucket: this.#bucket, Key: this.#key(runId, name), Body: data, IfNoneMatch: '*' }))
      if (name === METADATA_FILE && answer.ETag !== undefined) this.#versions.set(runId, answer.ETag)
    } catch (err) {
      if (isConflict(err)) throw new BlobExistsError(runId)
      throw err
    }
  }

  async #putMetadata (runId: string, data: string | Buffer): Promise<void> {
    const version = this.#versions.get(runId)
    if (version === undefined) throw new BlobConflictError(runId)
    try {
      const answer = await this.#client.send(new PutObjectCommand({ Bucket: this.#bucket, Key: this.#key(runId, METADATA_FILE), Body: data, IfMatch: version }))
      this.#versions.set(runId, answer.ETag!)
    } catch (err) {
      // Gone (deleted by another instance) is a conflict too: reading again tells the run records what happened.
      if (isConflict(err) || isMissing(err)) {
        this.#versions.delete(runId)
        throw new BlobConflictError(runId, err)
      }
      throw err
    }
  }

  /** Which objects of a run (or trash entry) a crash left: all of one without metadata.json, else its unlisted outputs; only those older than the cutoff. */
  async #sweepable (group: string, objects: ListedObject[], cutoff: number): Promise<ListedObject[]> {
    const old = objects.filter((o) => o.modified.getTime() < cutoff)
    const metadata = objects.find((o) => o.key.endsWith(`/${METADATA_FILE}`))
    if (metadata === undefined) return old.length === objects.length ? old : []
    let listed: Set<string> | null
    try {
      listed = listedNames(Buffer.from(await (await this.#client.send(new GetObjectCommand({ Bucket: this.#bucket, Key: metadata.key }))).Body!.transformToByteArray()))
    } catch (err) {
      if (isMissing(err)) return [] // removed meanwhile: the sweep runs while the store serves
      throw err
    }
    // Unreadable metadata: leave everything for a person to look at.
    if (listed === null) return []
    const prefix = `${this.#prefix}${group}/`
    return old.filter((o) => {
      const name = o.key.slice(prefix.length)
      return name.startsWith('output_') && !listed.has(name)
    })
  }

  async #get (runId: string, name: string, key: string, range?: string) {
    fileName(name)
    try {
      return await this.#client.send(new GetObjectCommand({ Bucket: this.#bucket, Key: key, Range: range }))
    } catch (err) {
      throw isMissing(err) ? new BlobNotFoundError(runId, name, err) : err
    }
  }

  async #listAll (prefix: string): Promise<ListedObject[]> {
    const objects: ListedObject[] = []
    let token: string | undefined
    do {
      const page = await this.#client.send(new ListObjectsV2Command({ Bucket: this.#bucket, Prefix: prefix, ContinuationToken: token }))
      for (const o of page.Contents ?? []) objects.push({ key: o.Key!, modified: o.LastModified ?? new Date(0) })
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined
    } while (token !== undefined)
    return objects
  }

  async #copyGroup (from: string, to: string, names: string[]): Promise<void> {
    const copy = async (name: string): Promise<void> => {
      await this.#client.send(new CopyObjectCommand({ Bucket: this.#bucket, CopySource: encodeURI(`${this.#bucket}/${from}${name}`), Key: `${to}${name}` }))
    }
    await settleAll(names.filter((name) => name !== METADATA_FILE).map(copy))
    if (names.includes(METADATA_FILE)) await copy(METADATA_FILE)
  }

  /** metadata.json first: the run (or entry) disappears at once; a crash leaves objects the sweep takes. */
  async #removeGroup (prefix: string): Promise<void> {
    await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: `${prefix}${METADATA_FILE}` }))
    await this.#deleteKeys((await this.#listAll(prefix)).map((o) => o.key))
  }

  async #deleteKeys (keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000)
      await this.#client.send(new DeleteObjectsCommand({ Bucket: this.#bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }))
    }
  }

  #key (runId: string, name: string): string {
    return `${this.#prefix}${runId}/${name === '' ? '' : fileName(name)}`
  }

  #trashKey (entry: TrashedRun, name: string): string {
    checkedRunId(entry.runId)
    return `${this.#prefix}${TRASH_PREFIX}${trashEntryName(entry)}/${name === '' ? '' : fileName(name)}`
  }
}

function isTrashEntry (group: string): boolean {
  return group.startsWith(TRASH_PREFIX) && parseTrashEntry(group.slice(TRASH_PREFIX.length)) !== null
}

function checkedRunId (runId: string): string {
  if (!isRunId(runId)) throw new TypeError(`not a run id: ${JSON.stringify(runId).slice(0, 80)}`)
  return runId
}

/** The files a metadata.json lists besides itself, or null when it cannot be read. */
function listedNames (bytes: Buffer): Set<string> | null {
  try {
    const metadata = JSON.parse(bytes.toString('utf8')) as { outputs: Array<{ filename: string }> }
    return new Set([METADATA_FILE, 'input_text.txt', 'transformed_text.txt', ...metadata.outputs.map((o) => o.filename)])
  } catch {
    return null
  }
}

function statusOf (err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode
}

function isMissing (err: unknown): boolean {
  return statusOf(err) === 404
}

/** 412: the condition did not hold; 409: another conditional write to the key was in flight. */
function isConflict (err: unknown): boolean {
  const status = statusOf(err)
  return status === 412 || status === 409
}
