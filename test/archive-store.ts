import type { Test } from 'tap'
import { cp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createRunstore } from '../runstore.js'
import { fixtures } from './fixtures/media.js'
import { tempRunsDir, testConfig } from './helper.js'

/** When the old runs of storeWithOldRuns were made. */
export const OLD = new Date('2025-03-14T09:30:00.000Z')

/** Every file of a folder, by name. */
export async function folder (dir: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>()
  for (const name of (await readdir(dir)).sort()) files.set(name, await readFile(join(dir, name)))
  return files
}

/**
 * Two finished runs made in March 2025 and one made now: made by the service's
 * storage, then given an id and timestamp of that day, as a store a year old holds them.
 */
export async function storeWithOldRuns (t: Test): Promise<{ runsDir: string, old: string[], recent: string }> {
  const runsDir = await tempRunsDir(t)
  const runstore = await createRunstore(testConfig(runsDir))
  const png = await readFile(fixtures.png.file)
  const made: string[] = []
  for (const i of [0, 1, 2]) {
    const run = await runstore.storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: `Blume ${i}`, status: 'running' })
    await runstore.storage.addMedia(run.run_id, png, { config: 'upload', backend: 'upload' })
    await runstore.storage.setStatus(run.run_id, 'completed')
    made.push(run.run_id)
  }
  await runstore.close()
  const old: string[] = []
  for (const [i, id] of made.slice(0, 2).entries()) {
    // A UUIDv7 of that millisecond (the service's own generator never goes back in time).
    const ms = (OLD.getTime() + i).toString(16).padStart(12, '0')
    const oldId = `${ms.slice(0, 8)}-${ms.slice(8)}-7000-8000-${String(i).padStart(12, '0')}`
    await cp(join(runsDir, id), join(runsDir, oldId), { recursive: true })
    await rm(join(runsDir, id), { recursive: true })
    const path = join(runsDir, oldId, 'metadata.json')
    const metadata = JSON.parse(await readFile(path, 'utf8'))
    await writeFile(path, JSON.stringify({ ...metadata, run_id: oldId, timestamp: new Date(OLD.getTime() + i).toISOString() }, null, 2) + '\n')
    old.push(oldId)
  }
  await rm(join(runsDir, '.index.sqlite'), { force: true })
  return { runsDir, old: old.sort().reverse(), recent: made[2]! }
}

