import t from 'tap'
import Database from 'better-sqlite3'
import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { ReconcileReport, RunSource } from '../../../../services/storage/index/run-index.js'
import { openRunIndex } from '../../../../services/storage/index/open-index.js'
import { SQLITE_INDEX_VERSION } from '../../../../services/storage/index/sqlite-file.js'
import { SqliteRunIndex } from '../../../../services/storage/index/sqlite.js'
import { fixtures } from '../../../fixtures/media.js'
import { followStore } from '../../../../runstore.js'
import { tempRunsDir } from '../../../helper.js'
import { ids, indexSuite, newStorage, type IndexDriver, type Test } from './index-suite.js'

const sqlite: IndexDriver = {
  name: 'sqlite',
  location: async (_t, runsDir) => join(runsDir, '.index.sqlite'),
  open: async (location, source) => await openRunIndex(location, source),
  destroy: async (location) => {
    for (const suffix of ['', '-wal', '-shm']) await rm(location + suffix, { force: true })
  },
  checkSize: async (t, location, sizeBytes) => { t.equal(sizeBytes, (await stat(location)).size, 'its size is the database file\'s') },
  checkClosed: async (t, location, runsDir) => {
    t.ok((await stat(location)).size > 0)
    t.same((await readdir(runsDir)).filter((n) => n.startsWith('.index')), ['.index.sqlite'], 'a clean close leaves no WAL behind')
  }
}

indexSuite(sqlite)

type OpenedIndex = Awaited<ReturnType<typeof openRunIndex>>['index'] & { openReport: ReconcileReport }

async function open (path: string, source: RunSource): Promise<OpenedIndex> {
  const { index, journal } = await openRunIndex(path, source)
  const report = await index.catchUp(source)
  return Object.assign(index, { openReport: { ...report, journaled: journal.journaled, skipped: [...journal.skipped, ...report.skipped] } })
}

async function wired (t: Test, runsDir: string): Promise<{ storage: ReturnType<typeof newStorage>, index: OpenedIndex, indexPath: string }> {
  const storage = newStorage(runsDir)
  await storage.init()
  const indexPath = join(runsDir, '.index.sqlite')
  const index = await open(indexPath, storage)
  followStore(storage.events, index)
  t.teardown(async () => { await index.close() })
  return { storage, index, indexPath }
}

async function openIndex (t: Test, runsDir: string): Promise<OpenedIndex> {
  const index = await open(join(runsDir, '.index.sqlite'), newStorage(runsDir))
  t.teardown(async () => { await index.close() })
  return index
}

t.test('RunStorage tells its subscribers about every durable write and deletion, and a failing subscriber fails nothing', async (t) => {
  const runsDir = await tempRunsDir(t)
  const heard: string[] = []
  const storage = newStorage(runsDir, (event) => {
    if (event.type === 'run.deleted') heard.push(`deleted ${event.run_id}`)
    else if (event.type === 'output.added') heard.push(`output ${event.output.filename} of ${event.metadata.outputs.length}`)
    else heard.push(`${event.type} ${event.metadata.status} ${event.metadata.outputs.length}`)
  })
  await storage.init()
  const run = await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'x' })
  await storage.setStatus(run.run_id, 'running')
  await storage.addMedia(run.run_id, await readFile(fixtures.png.file), { config: 'c', backend: 'b' })
  await t.rejects(storage.setStatus(run.run_id, 'created'), { code: 'INVALID_STATUS' })
  await t.rejects(storage.addMedia(run.run_id, await readFile(fixtures.png.file), { config: 'c', backend: 'b', media_type: 'audio' }), { code: 'MEDIA_TYPE_MISMATCH' })
  await storage.deleteRun(run.run_id.toUpperCase())
  t.same(heard, ['run.created created 0', 'run.updated running 0', 'run.updated running 1', 'output output_image.png of 1', `deleted ${run.run_id}`], 'nothing for refused changes')

  const throwing = newStorage(runsDir, () => { throw new Error('index down') })
  throwing.events.subscribe('rejecting', async () => { throw new Error('index down, asynchronously') })
  const kept = await throwing.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'y' })
  const updated = await throwing.setStatus(kept.run_id, 'running')
  t.equal(updated.status, 'running')
  t.equal(JSON.parse(await readFile(join(runsDir, kept.run_id, 'metadata.json'), 'utf8')).status, 'running', 'the write stands')
  await throwing.deleteRun(kept.run_id)
  t.same(await readdir(runsDir), [])
})


t.test('a corrupt or outdated index file is rebuilt', async (t) => {
  const runsDir = await tempRunsDir(t)
  const { storage, index, indexPath } = await wired(t, runsDir)
  const runs = []
  for (let i = 0; i < 40; i++) runs.push(await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: `run ${i} `.repeat(200) }))
  const expected = await ids(index)
  await index.close()

  await writeFile(indexPath, Buffer.from('this is not a database, just garbage bytes '.repeat(100)))
  const fromGarbage = await openIndex(t, runsDir)
  t.match(fromGarbage.openReport, { rebuilt: 'corrupt', added: 40 })
  t.same(await ids(fromGarbage), expected)
  await fromGarbage.close()

  // a good header, damaged pages further in
  const bytes = await readFile(indexPath)
  t.ok(bytes.length > 8 * 4096)
  bytes.fill(0xa5, 2 * 4096, bytes.length - 4096)
  await writeFile(indexPath, bytes)
  const fromDamaged = await openIndex(t, runsDir)
  t.match(fromDamaged.openReport, { rebuilt: 'corrupt', added: 40 })
  t.same(await ids(fromDamaged), expected)
  await fromDamaged.close()

  const raw = new Database(indexPath)
  raw.pragma(`user_version = ${SQLITE_INDEX_VERSION + 1}`)
  raw.close()
  const fromOld = await openIndex(t, runsDir)
  t.match(fromOld.openReport, { rebuilt: 'old-version', added: 40 })
  t.same(await ids(fromOld), expected)
  await fromOld.close()

  // an earlier build that never finished has no version yet
  const unfinished = new Database(indexPath)
  unfinished.pragma('user_version = 0')
  unfinished.close()
  const fromUnfinished = await openIndex(t, runsDir)
  t.match(fromUnfinished.openReport, { rebuilt: 'old-version', added: 40 })
})

t.test('an index file of version 3 is upgraded in place, not built again', async (t) => {
  const runsDir = await tempRunsDir(t)
  const { storage, index, indexPath } = await wired(t, runsDir)
  for (let i = 0; i < 5; i++) await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: `Blume ${i}`, user_id: i % 2 === 0 ? 'A' : 'B' })
  const expected = await ids(index, { user_id: 'A', q: 'blume' })
  await index.close()
  const raw = new Database(indexPath)
  raw.exec('DROP INDEX runs_by_user; CREATE INDEX runs_by_user ON runs (user_id)')
  raw.pragma('user_version = 3')
  raw.close()

  // A tool that only reads (the CLI beside a service not yet upgraded) reads it as it is.
  const reader = SqliteRunIndex.openReadOnly(indexPath)
  if (!('index' in reader)) throw new Error(reader.unusable)
  t.same(await ids(reader.index, { user_id: 'A', q: 'blume' }), expected, 'read as version 3')
  await reader.index.close()
  const untouched = new Database(indexPath, { readonly: true })
  t.equal(untouched.pragma('user_version', { simple: true }), 3, 'and left at version 3')
  untouched.close()

  const upgraded = await openIndex(t, runsDir)
  t.match(upgraded.openReport, { rebuilt: null, added: 0 }, 'nothing read from the store again')
  t.same(await ids(upgraded, { user_id: 'A', q: 'blume' }), expected)
  t.equal(expected.length, 3)
  await upgraded.close()
  const check = new Database(indexPath, { readonly: true })
  t.teardown(() => { check.close() })
  t.equal(check.pragma('user_version', { simple: true }), SQLITE_INDEX_VERSION)
  t.same(check.prepare("SELECT name FROM pragma_index_info('runs_by_user')").pluck().all(), ['user_id', 'archived'])
})

t.test('the index folder is created; a path that cannot hold a database stops the start', async (t) => {
  const runsDir = await tempRunsDir(t)
  const storage = newStorage(runsDir)
  await storage.init()
  const deep = await open(join(runsDir, 'var', 'lib', 'index.sqlite'), storage)
  t.teardown(async () => { await deep.close() })
  t.ok(await deep.isOpen())
  await mkdir(join(runsDir, 'a-folder.sqlite'))
  await t.rejects(open(join(runsDir, 'a-folder.sqlite'), storage))
  const failing = { listRunIds: async () => { throw new Error('disk gone') }, readMetadata: storage.getMetadata.bind(storage) }
  await t.rejects(open(join(runsDir, 'other.sqlite'), failing), /disk gone/)
})


t.test('damage past the pages a start reads: a listing answers INDEX_DAMAGED, the check in a worker thread finds it, the next start builds the index again', async (t) => {
  const runsDir = await tempRunsDir(t)
  const { storage, index, indexPath } = await wired(t, runsDir)
  for (let i = 0; i < 40; i++) await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: `run ${i} `.repeat(200) })
  const expected = await ids(index)
  await index.close()
  const bytes = await readFile(indexPath)
  const pages = bytes.length / 4096
  t.ok(pages > 40)
  bytes.fill(0xa5, 30 * 4096, bytes.length - 4096)
  await writeFile(indexPath, bytes)

  const damaged = (await openRunIndex(indexPath, storage)).index
  t.teardown(async () => { await damaged.close() })
  t.equal(damaged.rebuilt, null, 'the pages a start reads are whole')
  await t.rejects(damaged.list({ q: 'run 3' }), { code: 'INDEX_DAMAGED', statusCode: 503 })
  t.not(await damaged.checkIntegrity(), 'ok')
  await damaged.close()

  const next = await openIndex(t, runsDir)
  t.match(next.openReport, { rebuilt: 'corrupt', added: 40 })
  t.same(await ids(next), expected)
  t.equal(await next.checkIntegrity(), 'ok')
})

t.test('openReadOnly: lists what the service indexed and writes nothing, not even at close; unusable when it cannot list every run', async (t) => {
  const runsDir = await tempRunsDir(t)
  const indexPath = join(runsDir, '.index.sqlite')
  t.same(SqliteRunIndex.openReadOnly(indexPath), { unusable: 'there is no index file' })

  const { storage, index } = await wired(t, runsDir)
  const run = await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'Blume' })
  const meta = (): unknown => {
    const raw = new Database(indexPath, { readonly: true })
    try { return raw.prepare('SELECT key, value FROM meta ORDER BY key').all() } finally { raw.close() }
  }
  const before = meta()
  t.match(before, [{ key: 'built', value: '1' }, { key: 'clean_stop', value: '0' }], 'the writer has it in use')
  const reader = SqliteRunIndex.openReadOnly(indexPath)
  if (!('index' in reader)) throw new Error(reader.unusable)
  t.equal(reader.index.readOnly, true)
  t.same((await reader.index.list()).runs.map((r) => r.run_id), [run.run_id])
  t.equal(reader.index.lastStopWasClean, false)
  await reader.index.close()
  await reader.index.close()
  t.same(meta(), before, 'closing the reader marked no clean stop')
  await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'the writer goes on' })
  await index.close()

  const raw = new Database(indexPath)
  raw.prepare("UPDATE meta SET value = '0' WHERE key = 'built'").run()
  raw.close()
  t.same(SqliteRunIndex.openReadOnly(indexPath), { unusable: 'the index is still being built' })
  const damaged = new Database(indexPath)
  damaged.prepare("INSERT INTO meta (key, value) VALUES ('damaged', '1')").run()
  damaged.close()
  t.same(SqliteRunIndex.openReadOnly(indexPath), { unusable: 'the index file is damaged' })
  const other = new Database(indexPath)
  other.pragma(`user_version = ${SQLITE_INDEX_VERSION + 1}`)
  other.close()
  t.same(SqliteRunIndex.openReadOnly(indexPath), { unusable: 'the index file is of another version' })
  await SqliteRunIndex.remove(indexPath)
  await writeFile(indexPath, Buffer.from('this is not a database, just garbage bytes '.repeat(100)))
  t.same(SqliteRunIndex.openReadOnly(indexPath), { unusable: 'the index file is damaged' })
  await rm(indexPath)
  await mkdir(indexPath)
  t.throws(() => SqliteRunIndex.openReadOnly(indexPath), 'a path that is no file at all is no index to fall back from')
})
