import type { FastifyInstance } from 'fastify'
import { createHash } from 'node:crypto'
import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { isRunId } from '../../services/storage/run-id.js'

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex')
// The run index may live in the storage root; it is derived data with its own rules.
const isIndexFile = (name: string): boolean => name.startsWith('.index.sqlite')

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

/**
 * What a person checking the runs folder by hand would complain about: a
 * temporary file, a metadata.json that does not parse, a listed output that
 * is missing or whose size or sha256 differs. Empty when all is well.
 */
export async function storeProblems (runsDir: string): Promise<string[]> {
  const problems: string[] = []
  for (const name of await readdir(runsDir)) {
    if (name.startsWith('.tmp-')) problems.push(`temporary ${name} left in the root`)
    if (!isRunId(name)) continue
    const folder = join(runsDir, name)
    for (const file of await readdir(folder)) {
      if (file.startsWith('.tmp-')) problems.push(`temporary ${name}/${file} left`)
    }
    let metadata: { outputs: Array<{ filename: string, file_size_bytes: number, sha256: string }> }
    try {
      metadata = JSON.parse(await readFile(join(folder, 'metadata.json'), 'utf8'))
    } catch (err) {
      problems.push(`${name}/metadata.json does not parse: ${String(err)}`)
      continue
    }
    for (const output of metadata.outputs) {
      const path = join(folder, output.filename)
      const size = await stat(path).then((s) => s.size, () => null)
      if (size === null) problems.push(`${name}/${output.filename} is listed but missing`)
      else if (size !== output.file_size_bytes) problems.push(`${name}/${output.filename} has ${size} bytes, listed ${output.file_size_bytes}`)
      else if (sha256(await readFile(path)) !== output.sha256) problems.push(`${name}/${output.filename} does not match its sha256`)
    }
  }
  return problems
}

/** Run folders in the storage root, newest first, as GET /api/runs orders them. */
export async function runFolders (runsDir: string): Promise<string[]> {
  return (await readdir(runsDir)).filter(isRunId).sort().reverse()
}

/** Every run GET /api/runs lists, page after page. */
export async function listedRuns (app: FastifyInstance): Promise<string[]> {
  const ids: string[] = []
  let cursor: string | null = null
  do {
    const res = await app.inject({ url: '/api/runs', query: { limit: '200', ...(cursor !== null ? { cursor } : {}) } })
    if (res.statusCode !== 200) throw new Error(`GET /api/runs answered ${res.statusCode}: ${res.body}`)
    const page = res.json() as { runs: Array<{ run_id: string }>, next_cursor: string | null }
    ids.push(...page.runs.map((r) => r.run_id))
    cursor = page.next_cursor
  } while (cursor !== null)
  return ids
}
