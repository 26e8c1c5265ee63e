import { createHash } from 'node:crypto'
import { FormatRegistry } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { RunMetadata } from '../../schemas/run.js'
import type { BlobStore } from './blob/blob-store.js'
import { METADATA_FILE, listedFiles } from './run-storage.js'

export type VerifyProblemKind = 'metadata-unreadable' | 'metadata-invalid' | 'missing' | 'size' | 'sha256' | 'unlisted'

export interface VerifyProblem {
  run_id: string
  /** the file concerned; absent for the run as a whole */
  file?: string
  kind: VerifyProblemKind
  message: string
}

export interface VerifyReport {
  runs: number
  files: number
  bytes: number
  problems: VerifyProblem[]
}

// TypeBox checks formats only when told what they mean.
if (!FormatRegistry.Has('date-time')) FormatRegistry.Set('date-time', (value) => !Number.isNaN(Date.parse(value)) && /^\d{4}-\d{2}-\d{2}T/.test(value))

/**
 * What a researcher needs to trust a store: every metadata.json is valid,
 * every file it lists is there with its recorded size and sha256 (hashed
 * from the bytes, streamed), and every file in a run is listed. Reads
 * only, through the blob store, so it is safe while the service writes:
 * a run's files are in place before the metadata.json that lists them, so
 * the only thing a concurrent write can show is a file not listed yet,
 * which is checked again before it is called unlisted.
 */
export async function verifyStore (blobs: BlobStore, options: { onRun?: (done: number, total: number) => void } = {}): Promise<VerifyReport> {
  const report: VerifyReport = { runs: 0, files: 0, bytes: 0, problems: [] }
  const runIds = await blobs.listRuns()
  for (const runId of runIds) {
    await verifyRun(blobs, runId, report)
    report.runs++
    options.onRun?.(report.runs, runIds.length)
  }
  return report
}

async function verifyRun (blobs: BlobStore, runId: string, report: VerifyReport): Promise<void> {
  const problem = (kind: VerifyProblemKind, message: string, file?: string): void => {
    report.problems.push({ run_id: runId, ...(file === undefined ? {} : { file }), kind, message })
  }
  const metadata = await readMetadata(blobs, runId)
  if (typeof metadata === 'string') { problem('metadata-unreadable', metadata, METADATA_FILE); return }
  const invalid = Value.Errors(RunMetadata, metadata).First()
  if (invalid !== undefined) { problem('metadata-invalid', `${invalid.path || '(document)'}: ${invalid.message}`, METADATA_FILE); return }
  if (metadata.run_id !== runId) { problem('metadata-invalid', `names another run: ${metadata.run_id}`, METADATA_FILE); return }

  const facts = new Map(metadata.outputs.map((o) => [o.filename, { size: o.file_size_bytes, sha256: o.sha256 }]))
  const expected = new Map(listedFiles(metadata).map((name) => [name, facts.get(name) ?? null]))

  for (const [name, facts] of expected) {
    const stat = await blobs.stat(runId, name)
    if (stat === null) { problem('missing', 'listed in metadata.json but not stored', name); continue }
    report.files++
    report.bytes += stat.size
    if (facts === null) continue
    if (stat.size !== facts.size) { problem('size', `${stat.size} bytes stored, metadata.json says ${facts.size}`, name); continue }
    const hash = createHash('sha256')
    for await (const chunk of await blobs.open(runId, name)) hash.update(chunk as Buffer)
    if (hash.digest('hex') !== facts.sha256) problem('sha256', 'the bytes do not match the sha256 in metadata.json', name)
  }
  const stray = (await blobs.list(runId)).filter((name) => !expected.has(name))
  if (stray.length === 0) return
  // A write that landed meanwhile lists its file in a newer metadata.json.
  const now = await readMetadata(blobs, runId)
  const listedNow = new Set(typeof now === 'string' ? [] : (now.outputs ?? []).map((o) => o.filename))
  for (const name of stray.filter((n) => !listedNow.has(n))) problem('unlisted', 'stored in the run but not listed in metadata.json', name)
}

async function readMetadata (blobs: BlobStore, runId: string): Promise<RunMetadata | string> {
  try {
    return JSON.parse((await blobs.read(runId, METADATA_FILE)).toString('utf8')) as RunMetadata
  } catch (err) {
    return err instanceof SyntaxError ? `not JSON: ${err.message}` : 'cannot be read'
  }
}
