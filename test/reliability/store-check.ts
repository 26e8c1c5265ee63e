import type { FastifyInstance } from 'fastify'
import { createHash } from 'node:crypto'
import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { RunMetadata } from '../../schemas/run.js'
import { isRunId } from '../../services/storage/run-id.js'

export interface StoreCheck {
  runs: number
  outputs: number
  /** every broken promise found, in words; empty when the store is whole */
  problems: string[]
  metadata: Map<string, RunMetadata>
}

export const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex')
// The run index may live in the storage root; it is derived data with its own rules.
const isIndexFile = (name: string): boolean => name.startsWith('.index.sqlite')
// Derived data beside the runs: the thumbnail cache (THUMBNAIL_CACHE_DIR's default).
const isThumbnailCache = (name: string): boolean => name === '.thumbnails'

/**
 * What a researcher would check of a store after a crash, read straight from
 * the folders: every metadata.json parses, every file it lists is there with
 * its size and sha256, no temporary file is left, no run says `running`
 * (after a restart), and (given the service's URL) GET /api/runs lists exactly the runs on disk with
 * their status.
 */
export async function checkStore (runsDir: string, options: { serviceUrl?: string, afterRestart?: boolean } = {}): Promise<StoreCheck> {
  const { serviceUrl, afterRestart = false } = options
  const problems: string[] = []
  const metadata = new Map<string, RunMetadata>()
  let outputs = 0
  for (const entry of await readdir(runsDir, { withFileTypes: true })) {
    if (entry.name.startsWith('.tmp-')) { problems.push(`temporary ${entry.name} left in RUNS_DIR`); continue }
    if (isIndexFile(entry.name) || isThumbnailCache(entry.name) || entry.name === '.runstore.lock') continue
    // deleted runs, restorable: test/routes/trash.test.ts checks what it holds
    if (entry.name === '.trash') continue
    if (!entry.isDirectory() || !isRunId(entry.name)) { problems.push(`stray ${entry.name} in RUNS_DIR`); continue }
    const dir = join(runsDir, entry.name)
    const names = await readdir(dir)
    for (const name of names.filter((n) => n.startsWith('.tmp-'))) problems.push(`temporary ${entry.name}/${name} left`)
    let run: RunMetadata
    try {
      run = JSON.parse(await readFile(join(dir, 'metadata.json'), 'utf8')) as RunMetadata
    } catch (err) {
      problems.push(`${entry.name}/metadata.json does not parse: ${(err as Error).message}`)
      continue
    }
    metadata.set(entry.name, run)
    if (run.run_id !== entry.name) problems.push(`${entry.name}/metadata.json names ${run.run_id}`)
    if (afterRestart && run.status === 'running') problems.push(`${entry.name} still says running`)
    if (!names.includes('input_text.txt')) problems.push(`${entry.name}/input_text.txt is missing`)
    if (run.transformed_text !== null && !names.includes('transformed_text.txt')) problems.push(`${entry.name}/transformed_text.txt is missing`)
    for (const output of run.outputs) {
      outputs++
      const file = join(dir, output.filename)
      const size = await stat(file).then((s) => s.size, () => null)
      if (size === null) problems.push(`${entry.name}/${output.filename} is listed but missing`)
      else if (size !== output.file_size_bytes) problems.push(`${entry.name}/${output.filename} has ${size} bytes, metadata says ${output.file_size_bytes}`)
      else if (sha256(await readFile(file)) !== output.sha256) problems.push(`${entry.name}/${output.filename} does not match its sha256`)
    }
  }
  if (serviceUrl !== undefined) {
    const listed = await runsListedAt(serviceUrl)
    for (const [runId, status] of listed) {
      const run = metadata.get(runId)
      if (run === undefined) problems.push(`GET /api/runs lists ${runId}, which is not on disk`)
      else if (run.status !== status) problems.push(`GET /api/runs says ${runId} is ${status}, metadata.json says ${run.status}`)
    }
    for (const runId of metadata.keys()) if (!listed.has(runId)) problems.push(`${runId} is on disk but GET /api/runs does not list it`)
  }
  return { runs: metadata.size, outputs, problems, metadata }
}

/** The problems checkStore finds in the folders alone. */
export async function storeProblems (runsDir: string): Promise<string[]> {
  return (await checkStore(runsDir)).problems
}

/** Every file under the storage root (index files aside) with its sha256: what a failed write must leave as it was. */
export async function snapshot (runsDir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {}
  const walk = async (dir: string, prefix: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (prefix === '' && isIndexFile(entry.name)) continue
      const path = join(dir, entry.name)
      if (entry.isDirectory()) await walk(path, `${prefix}${entry.name}/`)
      else files[`${prefix}${entry.name}`] = sha256(await readFile(path))
    }
  }
  await walk(runsDir, '')
  return files
}

/** Run folders in the storage root, newest first, as GET /api/runs orders them. */
export async function runFolders (runsDir: string): Promise<string[]> {
  return (await readdir(runsDir)).filter(isRunId).sort().reverse()
}

/** Every run GET /api/runs lists, page after page, through app.inject. */
export async function listedRuns (app: FastifyInstance): Promise<string[]> {
  return [...(await pageThrough(async (query) => {
    const res = await app.inject({ url: '/api/runs', query })
    return { statusCode: res.statusCode, body: res.body }
  })).keys()]
}

/** run id → status of every run GET /api/runs of the service at serviceUrl lists (with these filters), in its order. */
export async function runsListedAt (serviceUrl: string, filters: Record<string, string> = {}): Promise<Map<string, string>> {
  return await pageThrough(async (query) => {
    const res = await fetch(`${new URL('/api/runs', serviceUrl).href}?${new URLSearchParams({ ...filters, ...query }).toString()}`)
    return { statusCode: res.status, body: await res.text() }
  })
}

/** run id → status of every run GET /api/runs lists, in its order. */
async function pageThrough (get: (query: Record<string, string>) => Promise<{ statusCode: number, body: string }>): Promise<Map<string, string>> {
  const listed = new Map<string, string>()
  let cursor: string | null = null
  do {
    const res = await get({ limit: '200', ...(cursor !== null ? { cursor } : {}) })
    if (res.statusCode !== 200) throw new Error(`GET /api/runs answered ${res.statusCode}: ${res.body.slice(0, 300)}`)
    const page = JSON.parse(res.body) as { runs: Array<{ run_id: string, status: string }>, next_cursor: string | null }
    for (const run of page.runs) listed.set(run.run_id, run.status)
    cursor = page.next_cursor
  } while (cursor !== null)
  return listed
}
