import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join, relative } from 'node:path'

/**
 * What a store holds, read beside the service rather than through it, so a
 * test checks what was stored on any STORAGE_DRIVER: run folders in RUNS_DIR
 * on local, keys `<prefix>/<run_id>/<name>` in the bucket on s3. Where a run
 * id is asked for, `.trash/<entry>` names a trashed run.
 */
export interface StoredView {
  /** the bytes of a stored file of a run; rejects when there is none */
  read: (runId: string, name: string) => Promise<Buffer>
  /** every name stored for the run (half-made ones too), sorted */
  list: (runId: string) => Promise<string[]>
  /** every name at the top of the store, sorted: the run ids, and `.trash` or leftovers when there are any (the index is no part of the store) */
  entries: () => Promise<string[]>
  /** the entries of the trash (`<run_id>@<time>`), sorted */
  trash: () => Promise<string[]>
  /** every stored file, as `<run_id>/<name>` (`.trash/<entry>/<name>`, leftovers too), sorted */
  files: () => Promise<string[]>
  /** stores a file of a run as another writer (a person, an older version) would, past the service */
  write: (runId: string, name: string, data: string | Buffer) => Promise<void>
  /** removes one stored file of the run, or (without a name) all of them, past the service */
  remove: (runId: string, name?: string) => Promise<void>
}

/** The parsed metadata.json of a stored run. */
export async function storedMetadata (view: StoredView, runId: string): Promise<any> {
  return JSON.parse((await view.read(runId, 'metadata.json')).toString('utf8'))
}

/** Every stored file of a run, by name. */
export async function runFiles (view: StoredView, runId: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>()
  for (const name of await view.list(runId)) files.set(name, await view.read(runId, name))
  return files
}

// The run index (.index.sqlite*) and the lock of the store's owner live in the storage root too.
const notStored = (name: string): boolean => name.startsWith('.index.sqlite') || name === '.runstore.lock'

/** A store of run folders in runsDir (STORAGE_DRIVER=local). */
export function localView (runsDir: string): StoredView {
  return {
    read: async (runId, name) => await readFile(join(runsDir, runId, name)),
    list: async (runId) => (await readdir(join(runsDir, runId))).sort(),
    entries: async () => (await readdir(runsDir)).filter((name) => !notStored(name)).sort(),
    trash: async () => (await readdir(join(runsDir, '.trash')).catch((err) => { if (err.code === 'ENOENT') return []; throw err })).sort(),
    files: async () => (await readdir(runsDir, { withFileTypes: true, recursive: true }))
      .filter((entry) => entry.isFile())
      .map((entry) => relative(runsDir, join(entry.parentPath, entry.name)))
      .filter((path) => !notStored(path))
      .sort(),
    write: async (runId, name, data) => {
      await mkdir(join(runsDir, runId), { recursive: true })
      await writeFile(join(runsDir, runId, name), data)
    },
    remove: async (runId, name = '') => { await rm(join(runsDir, runId, name), { recursive: true }) }
  }
}
