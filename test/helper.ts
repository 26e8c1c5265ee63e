import type { Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildApp } from '../app.js'
import { loadConfig, type Config } from '../config.js'
import { localView, type StoredView } from './stored-view.js'

/** A fresh, empty storage root removed after the test. */
export async function tempRunsDir (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'runstore-test-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

export function testConfig (runsDir: string, env: Record<string, string> = {}): Config {
  // No overload refusals unless a test asks for them: they depend on how busy the machine is, not on the code under test.
  return loadConfig({ RUNS_DIR: runsDir, LOG_LEVEL: 'silent', ALLOWED_FETCH_HOSTS: '127.0.0.1', OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '0', ...env })
}

/** Settings a whole test file adds to every app it builds: DATABASE_URL, when a suite runs against PostgreSQL. */
type IndexEnv = (t: Test, runsDir: string) => Promise<Record<string, string>>
let indexEnv: IndexEnv = async () => ({})
let removeIndex = async (runsDir: string): Promise<void> => {
  for (const suffix of ['', '-wal', '-shm']) await rm(join(runsDir, `.index.sqlite${suffix}`), { force: true })
}
let crashOfIndex = async (_runsDir: string): Promise<void> => {}
let driver: 'sqlite' | 'postgres' = 'sqlite'

/**
 * Makes build() add these settings; a test file that runs another's suite per driver calls it before importing that file.
 * `crash`: what the death of a process does to the index it had open (nothing for a file; a server sees its connections end).
 */
export function useIndexEnv (name: 'postgres', env: IndexEnv, remove: (runsDir: string) => Promise<void>, crash: (runsDir: string) => Promise<void>): void {
  driver = name
  indexEnv = env
  removeIndex = remove
  crashOfIndex = crash
}

/** For a test that lets an app die without closing it: the index of the store in runsDir sees that process gone. */
export async function crashIndex (runsDir: string): Promise<void> {
  await crashOfIndex(runsDir)
}

/** Which index the apps of this test file use. */
export function indexDriver (): 'sqlite' | 'postgres' {
  return driver
}

/** Removes the index of the store in runsDir (of a stopped app), as an operator who deletes it does. */
export async function destroyIndex (runsDir: string): Promise<void> {
  await removeIndex(runsDir)
}

/** Settings a whole test file adds to every app it builds for where runs are stored: the S3 settings, when a suite runs on STORAGE_DRIVER=s3. */
type StoreEnv = (runsDir: string) => Promise<Record<string, string>>
let storeEnv: StoreEnv = async () => ({})
let viewOf: (runsDir: string) => StoredView = localView
let store: 'local' | 's3' = 'local'

/** Makes build() add these settings, and storedView read that store; a test file that runs another's suite per driver calls it before importing that file. */
export function useStoreEnv (name: 's3', env: StoreEnv, view: (runsDir: string) => StoredView): void {
  store = name
  storeEnv = env
  viewOf = view
}

/** Which blob store (STORAGE_DRIVER) the apps of this test file use. */
export function storeDriver (): 'local' | 's3' {
  return store
}

/** The settings of the store that the apps built over runsDir use (none for the local disk), for a test that opens that store past build(). */
export async function storeSettings (runsDir: string): Promise<Record<string, string>> {
  return await storeEnv(runsDir)
}

/** What the store of the apps built over runsDir holds, wherever that is. */
export function storedView (runsDir: string): StoredView {
  return viewOf(runsDir)
}

/**
 * Whether the checks that follow can run: false on a store that is not the
 * local disk (they are about its folders: temp files, hand-made or broken
 * folders, crash leftovers), and then they are reported skipped with why.
 */
export function onlyLocal (t: Test, reason: string): boolean {
  if (store === 'local') return true
  t.pass('checks of the local disk', { skip: `not on STORAGE_DRIVER=${store}: ${reason}` })
  return false
}

/** The app on a temporary RUNS_DIR, closed when the test ends; use app.inject. */
export async function build (t: Test, env: Record<string, string> = {}): Promise<FastifyInstance> {
  const runsDir = env.RUNS_DIR ?? await tempRunsDir(t)
  const app = await buildApp(testConfig(runsDir, { ...await storeEnv(runsDir), ...await indexEnv(t, runsDir), ...env }))
  // Clients are generated from /openapi.json: an answer whose status the route does not declare is a broken contract.
  app.addHook('onSend', async (request, reply) => {
    const declared = request.routeOptions.schema?.response as Record<string, unknown> | undefined
    if (declared !== undefined && !(String(reply.statusCode) in declared) && !('default' in declared)) {
      t.fail(`${request.method} ${request.routeOptions.url} answered ${reply.statusCode}, which its OpenAPI responses do not declare (${Object.keys(declared).join(', ')})`)
    }
  })
  t.teardown(async () => { await app.close() })
  await app.ready()
  // The start's background work (crash sweep, index catch-up) done, as on a service that has run a while.
  await app.runstore.startup
  return app
}

/** A multipart/form-data body built by hand, so tests control order, names and truncation. */
export function multipartBody (parts: Array<{ name: string, value: string | Buffer, filename?: string, contentType?: string }>): { body: Buffer, contentType: string } {
  const boundary = '----runstore' + Math.random().toString(16).slice(2)
  const chunks: Buffer[] = []
  for (const part of parts) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${part.name}"`
    if (part.filename !== undefined) head += `; filename="${part.filename}"`
    head += '\r\n'
    if (part.contentType !== undefined) head += `Content-Type: ${part.contentType}\r\n`
    chunks.push(Buffer.from(head + '\r\n'), Buffer.isBuffer(part.value) ? part.value : Buffer.from(part.value), Buffer.from('\r\n'))
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`))
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` }
}
