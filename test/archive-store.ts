import type { Test } from 'tap'
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { createRunstore } from '../runstore.js'
import { fixtures } from './fixtures/media.js'
import { storedView, storeSettings, tempRunsDir, testConfig } from './helper.js'
import { runFiles } from './stored-view.js'

/** When the old runs of storeWithOldRuns were made. */
export const OLD = new Date('2025-03-14T09:30:00.000Z')

/**
 * Two finished runs made in March 2025 and one made now: made by the service's
 * storage (on the test file's STORAGE_DRIVER), then given an id and timestamp
 * of that day, as a store a year old holds them.
 */
export async function storeWithOldRuns (t: Test): Promise<{ runsDir: string, old: string[], recent: string }> {
  const runsDir = await tempRunsDir(t)
  const runstore = await createRunstore(testConfig(runsDir, await storeSettings(runsDir)))
  const png = await readFile(fixtures.png.file)
  const made: string[] = []
  for (const i of [0, 1, 2]) {
    const run = await runstore.storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: `Blume ${i}`, status: 'running' })
    await runstore.storage.addMedia(run.run_id, png, { config: 'upload', backend: 'upload' })
    await runstore.storage.setStatus(run.run_id, 'completed')
    made.push(run.run_id)
  }
  await runstore.close()
  const view = storedView(runsDir)
  const old: string[] = []
  for (const [i, id] of made.slice(0, 2).entries()) {
    // A UUIDv7 of that millisecond (the service's own generator never goes back in time).
    const ms = (OLD.getTime() + i).toString(16).padStart(12, '0')
    const oldId = `${ms.slice(0, 8)}-${ms.slice(8)}-7000-8000-${String(i).padStart(12, '0')}`
    const files = await runFiles(view, id)
    for (const [name, data] of files) if (name !== 'metadata.json') await view.write(oldId, name, data)
    const metadata = JSON.parse(files.get('metadata.json')!.toString('utf8'))
    await view.write(oldId, 'metadata.json', JSON.stringify({ ...metadata, run_id: oldId, timestamp: new Date(OLD.getTime() + i).toISOString() }, null, 2) + '\n')
    await view.remove(id)
    old.push(oldId)
  }
  await rm(join(runsDir, '.index.sqlite'), { force: true })
  return { runsDir, old: old.sort().reverse(), recent: made[2]! }
}

