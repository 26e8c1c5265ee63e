import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'

const BETTER_SQLITE3 = createRequire(import.meta.url).resolve('better-sqlite3')

// Runs in a worker thread: SQLite's quick_check reads the whole file and would hold the service's event loop for seconds.
const CHECK = `
const { parentPort, workerData } = require('node:worker_threads')
const Database = require(workerData.driver)
let db
try {
  db = new Database(workerData.path, { readonly: true, fileMustExist: true })
  parentPort.postMessage(db.pragma('quick_check', { simple: true }))
} catch (err) {
  parentPort.postMessage(String(err && err.message || err))
} finally {
  if (db) db.close()
}
`

/** SQLite's quick_check of the file at `path`, off the event loop: 'ok', or what it found wrong. */
export async function checkIndexFile (path: string): Promise<string> {
  const worker = new Worker(CHECK, { eval: true, workerData: { path, driver: BETTER_SQLITE3 } })
  return await new Promise<string>((resolve, reject) => {
    worker.once('message', (result: string) => { resolve(result); void worker.terminate() })
    worker.once('error', reject)
  })
}
