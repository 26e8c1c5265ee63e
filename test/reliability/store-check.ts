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

/**
 * What a researcher would check of a store after a crash, read straight from
 * the folders: every metadata.json parses, every file it lists is there with
 * its size and sha256, no temporary file is left, no run says `running`, and
 * (given the service's URL) GET /api/runs lists exactly the runs on disk with
 * their status.
 */
export async function checkStore (runsDir: string, serviceUrl?: string): Promise<StoreCheck> {
  const problems: string[] = []
  const metadata = new Map<string, RunMetadata>()
  let outputs = 0
  for (const entry of await readdir(runsDir, { withFileTypes: true })) {
    if (entry.name.startsWith('.tmp-')) { problems.push(`temporary ${entry.name} left in RUNS_DIR`); continue }
    if (entry.name.startsWith('.index.sqlite')) continue
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
    if (run.status === 'running') problems.push(`${entry.name} still says running`)
    if (!names.includes('input_text.txt')) problems.push(`${entry.name}/input_text.txt is missing`)
    if (run.transformed_text !== null && !names.includes('transformed_text.txt')) problems.push(`${entry.name}/transformed_text.txt is missing`)
    for (const output of run.outputs) {
      outputs++
      const file = join(dir, output.filename)
      try {
        const size = (await stat(file)).size
        if (size !== output.file_size_bytes) problems.push(`${entry.name}/${output.filename} has ${size} bytes, metadata says ${output.file_size_bytes}`)
        else if (sha256(await readFile(file)) !== output.sha256) problems.push(`${entry.name}/${output.filename} does not match its sha256`)
      } catch {
        problems.push(`${entry.name}/${output.filename} is listed but missing`)
      }
    }
  }
  if (serviceUrl !== undefined) {
    const listed = await listAll(serviceUrl)
    for (const [runId, status] of listed) {
      const run = metadata.get(runId)
      if (run === undefined) problems.push(`GET /api/runs lists ${runId}, which is not on disk`)
      else if (run.status !== status) problems.push(`GET /api/runs says ${runId} is ${status}, metadata.json says ${run.status}`)
    }
    for (const runId of metadata.keys()) if (!listed.has(runId)) problems.push(`${runId} is on disk but GET /api/runs does not list it`)
  }
  return { runs: metadata.size, outputs, problems, metadata }
}

async function listAll (serviceUrl: string): Promise<Map<string, string>> {
  const listed = new Map<string, string>()
  let cursor: string | null = null
  do {
    const url = new URL('/api/runs', serviceUrl)
    url.searchParams.set('limit', '200')
    if (cursor !== null) url.searchParams.set('cursor', cursor)
    const res = await fetch(url)
    if (!res.ok) throw new Error(`GET ${url.pathname}${url.search} answered ${res.status}`)
    const page = await res.json() as { runs: Array<{ run_id: string, status: string }>, next_cursor: string | null }
    for (const run of page.runs) listed.set(run.run_id, run.status)
    cursor = page.next_cursor
  } while (cursor !== null)
  return listed
}
