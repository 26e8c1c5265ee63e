import t from 'tap'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { MediaOutput, RunMetadata } from '../../../../schemas/run.js'
import { FetchPolicy } from '../../../../services/http/address-policy.js'
import { MediaIngester } from '../../../../services/storage/ingest.js'
import type { CatchUpTarget } from '../../../../services/storage/index/catch-up.js'
import { decodeCursor, encodeCursor, type ReconcileReport, type RunIndex, type RunListFilters, type RunSource } from '../../../../services/storage/index/run-index.js'
import { LocalBlobStore } from '../../../../services/storage/blob/local.js'
import { RunEvents, type RunEvent } from '../../../../services/storage/run-events.js'
import { uuidv7 } from '../../../../services/storage/run-id.js'
import { RunStorage } from '../../../../services/storage/run-storage.js'
import { fixtures } from '../../../fixtures/media.js'
import { followStore } from '../../../../runstore.js'
import { tempRunsDir } from '../../../helper.js'

export type Test = Parameters<typeof tempRunsDir>[0]

/** An index as the suite sees it: the seam, and what the catch-up reads of it. */
export type AnyIndex = RunIndex & Pick<CatchUpTarget, 'rebuilt' | 'archivedRuns'>

/** One kind of index under the same tests (sqlite.test.ts, postgres.test.ts). */
export interface IndexDriver {
  name: string
  /** where the index of the store in runsDir is kept: the same place for the same runsDir, removed after the test */
  location: (t: Test, runsDir: string) => Promise<string>
  /** opens the index there and reads its journal, as a start does before the store takes writes */
  open: (location: string, source: RunSource) => Promise<{ index: AnyIndex, journal: { journaled: number, skipped: ReconcileReport['skipped'] } }>
  /** what the death of the process that has the index open (and never closes it) does to it: nothing for a file, its connections end for a server */
  crash?: (location: string) => Promise<void>
  /** removes the index, as an operator who deletes it does (while it is open too) */
  destroy: (location: string) => Promise<void>
  /** stats().sizeBytes says what the index takes */
  checkSize: (t: Test, location: string, sizeBytes: number | null) => Promise<void>
  /** what a clean close leaves behind */
  checkClosed: (t: Test, location: string, runsDir: string) => Promise<void>
}

export function newStorage (runsDir: string, onEvent?: (event: RunEvent) => void): RunStorage {
  const events = new RunEvents()
  if (onEvent !== undefined) events.subscribe('test', onEvent)
  return new RunStorage({
    blobs: new LocalBlobStore(runsDir),
    events,
    ingester: new MediaIngester({ maxBytes: 1 << 22, fetchTimeoutMs: 1000, maxRedirects: 0, fetchPolicy: new FetchPolicy() })
  })
}

export type OpenedIndex = AnyIndex & { openReport: ReconcileReport }

export const ids = async (index: RunIndex, filters: RunListFilters = {}): Promise<string[]> => (await index.list(filters, { limit: 200 })).runs.map((r) => r.run_id)

export function output (index: number, type: MediaOutput['type'], backend: string): MediaOutput {
  const extension = { image: 'png', audio: 'wav', video: 'mp4', model3d: 'glb' }[type]
  return {
    index,
    type,
    filename: `output_${type}_${index + 1}.${extension}`,
    backend,
    config: `${backend}_config`,
    file_size_bytes: 100,
    format: extension,
    mime_type: 'application/octet-stream',
    width: null,
    height: null,
    duration_seconds: null,
    sha256: '0'.repeat(64),
    created_at: '2025-11-04T00:00:00.000Z',
    source: { kind: backend }
  }
}

/** A run folder written by hand (as when runs are copied in from another machine). */
export async function writeRunFolder (runsDir: string, fields: Partial<RunMetadata> & { timestamp: string }): Promise<RunMetadata> {
  const runId = fields.run_id ?? uuidv7(Date.parse(fields.timestamp))
  const metadata: RunMetadata = {
    metadata_version: 1,
    run_id: runId,
    user_id: null,
    updated_at: fields.timestamp,
    status: 'completed',
    schema: 'dada',
    execution_mode: 'eco',
    safety_level: 'kids',
    input_text: 'x',
    transformed_text: null,
    stages: [],
    outputs: [],
    errors: [],
    ...fields
  }
  await mkdir(join(runsDir, runId), { recursive: true })
  await writeFile(join(runsDir, runId, 'metadata.json'), JSON.stringify(metadata, null, 2))
  await writeFile(join(runsDir, runId, 'input_text.txt'), metadata.input_text)
  return metadata
}

/** The tests every index passes, with the same assertions. */
export function indexSuite (driver: IndexDriver): void {
  /** Opens the index, reads its journal and catches up with the store, as the composition root does at start (the catch-up in the background there). */
  async function open (location: string, source: RunSource): Promise<OpenedIndex> {
    const { index, journal } = await driver.open(location, source)
    const report = await index.catchUp(source)
    return Object.assign(index, { openReport: { ...report, journaled: journal.journaled, skipped: [...journal.skipped, ...report.skipped] } })
  }

  /** Storage and index wired the way the composition root wires them, both closed after the test. */
  async function wired (t: Test, runsDir?: string): Promise<{ storage: RunStorage, index: OpenedIndex, indexPath: string }> {
    const dir = runsDir ?? await tempRunsDir(t)
    const storage = newStorage(dir)
    await storage.init()
    const indexPath = await driver.location(t, dir)
    const index = await open(indexPath, storage)
    followStore(storage.events, index)
    t.teardown(async () => { await index.close() })
    return { storage, index, indexPath }
  }

  async function openIndex (t: Test, runsDir: string): Promise<OpenedIndex> {
    const storage = newStorage(runsDir)
    const index = await open(await driver.location(t, runsDir), storage)
    t.teardown(async () => { await index.close() })
    return index
  }

  t.test(`${driver.name}: the storage keeps the index current: create, text, status, media, delete`, async (t) => {
    const { storage, index, indexPath } = await wired(t)
    t.same(index.openReport, { rebuilt: 'missing', fullScan: true, journaled: 0, added: 0, updated: 0, removed: 0, skipped: [] })
    t.ok(await index.isOpen())
    const empty = await index.stats()
    t.match(empty, { runs: 0, byStatus: {} })
    await driver.checkSize(t, indexPath, empty.sizeBytes)

    const run = await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'Eine Blume', user_id: 'DOE_J' })
    t.same((await index.list()).runs, [{
      run_id: run.run_id,
      timestamp: run.timestamp,
      updated_at: run.updated_at,
      status: 'created',
      schema: 'dada',
      execution_mode: 'eco',
      user_id: 'DOE_J',
      input_text: 'Eine Blume',
      transformed_text: null,
      output_count: 0,
      media_types: [],
      backends: [],
      archive: null
    }])

    await storage.setTransformedText(run.run_id, 'A surreal flower')
    const running = await storage.setStatus(run.run_id, 'running')
    await storage.addMedia(run.run_id, await readFile(fixtures.wav.file), { config: 'mic', backend: 'upload' })
    await storage.addMedia(run.run_id, await readFile(fixtures.png.file), { config: 'sd35_large', backend: 'comfyui' })
    const second = await storage.addMedia(run.run_id, await readFile(fixtures.jpeg.file), { config: 'gpt_image', backend: 'openai' })
    const done = await storage.setStatus(run.run_id, 'completed')
    t.ok(done.updated_at >= running.updated_at)
    t.match((await index.list()).runs[0], {
      status: 'completed',
      updated_at: done.updated_at,
      transformed_text: 'A surreal flower',
      output_count: 3,
      media_types: ['audio', 'image'],
      backends: ['upload', 'comfyui', 'openai']
    })
    t.equal(second.index, 2)
    t.same(await ids(index, { q: 'surreal' }), [run.run_id], 'the transformed text is searchable at once')
    await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'Noch eine' })
    t.match(await index.stats(), { runs: 2, byStatus: { completed: 1, created: 1 } }, 'counted by status')

    await storage.deleteRun(run.run_id)
    t.same((await index.list()).runs.length, 1)
    t.same((await index.stats()).byStatus, { created: 1 })

    // An archive route answers before the index's write has ended: the next request must already see the run as archived.
    const leaving = (await index.list()).runs[0]!
    storage.events.emit({ type: 'run.archived', run_id: leaving.run_id, metadata: await storage.getMetadata(leaving.run_id), archive: 'runs-2026-01.zip' })
    t.equal(await index.archiveOf(leaving.run_id), 'runs-2026-01.zip', 'an archived run is named at once')
    storage.events.emit({ type: 'run.deleted', run_id: leaving.run_id })
    t.same(await index.archivedRuns(), new Map(), 'and a removed one is gone at once')
  })

  t.test(`${driver.name}: filters, each alone and combined`, async (t) => {
    const runsDir = await tempRunsDir(t)
    const r1 = await writeRunFolder(runsDir, { timestamp: '2025-11-03T23:30:00.000Z', user_id: 'A', schema: 'dada', status: 'completed', input_text: 'Eine Blume auf der Wiese', transformed_text: 'A surreal flower in a meadow', outputs: [output(0, 'image', 'comfyui'), output(1, 'audio', 'comfyui')] })
    const r2 = await writeRunFolder(runsDir, { timestamp: '2025-11-04T00:00:00.000Z', user_id: 'B', schema: 'bauhaus', status: 'failed', input_text: '100% Katze_mit "Hut"', outputs: [output(0, 'image', 'openai')] })
    const r3 = await writeRunFolder(runsDir, { timestamp: '2025-11-04T12:00:00.000Z', user_id: 'A', schema: 'bauhaus', status: 'completed', input_text: 'ÜBER den Wolken', outputs: [output(0, 'video', 'replicate'), output(1, 'image', 'builtin')] })
    const r4 = await writeRunFolder(runsDir, { timestamp: '2025-11-05T00:00:00.000Z', user_id: null, schema: 'dada', status: 'running', input_text: 'a_b 50%' })
    const r5 = await writeRunFolder(runsDir, { timestamp: '2025-11-05T10:00:00.000Z', user_id: 'B', schema: 'dada', status: 'blocked', input_text: 'Ein Haus', transformed_text: "it's a house", outputs: [output(0, 'model3d', 'comfyui')] })
    const index = await openIndex(t, runsDir)
    t.match(index.openReport, { rebuilt: 'missing', added: 5 })
    const [a, b, c, d, e] = [r1, r2, r3, r4, r5].map((r) => r.run_id)

    t.same(await ids(index), [e, d, c, b, a], 'newest first')
    const cases: Array<[RunListFilters, Array<string | undefined>, string?]> = [
      [{ user_id: 'A' }, [c, a]],
      [{ user_id: 'nobody' }, []],
      [{ schema: 'bauhaus' }, [c, b]],
      [{ status: 'completed' }, [c, a]],
      [{ media_type: 'image' }, [c, b, a]],
      [{ media_type: 'model3d' }, [e]],
      [{ backend: 'comfyui' }, [e, a]],
      [{ from: '2025-11-04' }, [e, d, c, b]],
      [{ to: '2025-11-04' }, [a]],
      [{ from: '2025-11-04', to: '2025-11-05' }, [c, b]],
      [{ from: '2025-11-04T01:00:00+01:00' }, [e, d, c, b], 'from is inclusive, offsets count'],
      [{ to: '2025-11-04T12:00:00.000Z' }, [b, a], 'to is exclusive'],
      [{ from: '2025-11-04T12:00:00.001Z', to: '2025-11-05T10:00:00Z' }, [d]],
      // combined
      [{ user_id: 'A', schema: 'bauhaus' }, [c]],
      [{ media_type: 'image', backend: 'comfyui' }, [a]],
      [{ media_type: 'image', backend: 'replicate' }, [], 'media_type and backend must hold for the same output'],
      [{ media_type: 'video', backend: 'replicate' }, [c]],
      [{ user_id: 'B', status: 'blocked', from: '2025-11-05' }, [e]],
      [{ schema: 'dada', q: 'blume' }, [a]],
      [{ schema: 'bauhaus', q: 'blume' }, []]
    ]
    for (const [filters, expected, name] of cases) t.same(await ids(index, filters), expected, name ?? JSON.stringify(filters))
  })

  t.test(`${driver.name}: q: substrings of either text, any case, with %, _ and quotes taken literally`, async (t) => {
    const runsDir = await tempRunsDir(t)
    const r1 = await writeRunFolder(runsDir, { timestamp: '2025-11-03T23:30:00.000Z', input_text: 'Eine Blume auf der Wiese', transformed_text: 'A surreal flower in a meadow' })
    const r2 = await writeRunFolder(runsDir, { timestamp: '2025-11-04T00:00:00.000Z', input_text: '100% Katze_mit "Hut"' })
    const r3 = await writeRunFolder(runsDir, { timestamp: '2025-11-04T12:00:00.000Z', input_text: 'ÜBER den Wolken' })
    const r4 = await writeRunFolder(runsDir, { timestamp: '2025-11-05T00:00:00.000Z', input_text: 'a_b 50%' })
    const r5 = await writeRunFolder(runsDir, { timestamp: '2025-11-05T10:00:00.000Z', input_text: 'Ein Haus', transformed_text: "it's a house; DROP TABLE runs" })
    const index = await openIndex(t, runsDir)
    const [a, b, c, d, e] = [r1, r2, r3, r4, r5].map((r) => r.run_id)

    const cases: Array<[string, Array<string | undefined>, string?]> = [
      ['%', [d, b]],
      ['_', [d, b]],
      ['%%', []],
      ['0%', [d, b]],
      ['e_m', [b]],
      ['a_b', [d]],
      ['a%b', []],
      ['"', [b]],
      ['"Hut"', [b]],
      ['Katze_mit "H', [b]],
      ["it's", [e]],
      ["'", [e]],
      ['DROP TABLE runs', [e]],
      ['BLUME', [a]],
      ['blume auf', [a]],
      ['über', [c], 'case folding beyond ASCII'],
      ['u\u0308ber', [c], 'a decomposed ü finds a composed one'],
      ['surreal', [a], 'the transformed text'],
      ['MEADOW', [a]],
      ['wiese a surreal', [], 'no match across the two texts'],
      ['ha', [e], 'two characters'],
      ['ü', [c], 'one character'],
      ['e', [e, c, b, a]],
      ['NEAR', []],
      ['*', []],
      ['Blume OR Haus', []]
    ]
    for (const [q, expected, name] of cases) t.same(await ids(index, { q }), expected, name ?? `q=${q}`)
  })

  t.test(`${driver.name}: paging: newest first, no duplicates or gaps, also when runs are created between pages`, async (t) => {
    const { storage, index } = await wired(t)
    const created: string[] = []
    for (let i = 0; i < 7; i++) created.push((await storage.createRun({ schema: i % 2 === 0 ? 'dada' : 'bauhaus', execution_mode: 'eco', input_text: `run ${i}` })).run_id)
    const newestFirst = [...created].reverse()

    const first = (await index.list({}, { limit: 3 }))
    t.same(first.runs.map((r) => r.run_id), newestFirst.slice(0, 3))
    t.type(first.next_cursor, 'string')
    // new runs arrive while a teacher reads page one
    const later = [(await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'new 1' })).run_id]
    later.push((await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'new 2' })).run_id)
    const second = (await index.list({}, { limit: 3, cursor: first.next_cursor! }))
    t.same(second.runs.map((r) => r.run_id), newestFirst.slice(3, 6))
    await storage.deleteRun(newestFirst[6]!)
    await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'new 3' })
    const third = (await index.list({}, { limit: 3, cursor: second.next_cursor! }))
    t.same(third, { runs: [], next_cursor: null, total: 9, total_exact: true }, 'the deleted run is gone, nothing else is left')

    const bauhaus = (await index.list({ schema: 'bauhaus' }, { limit: 3 }))
    t.same(bauhaus.runs.map((r) => r.run_id), [created[5], created[3], created[1]])
    t.equal(bauhaus.next_cursor, null, 'a page that ends exactly at the last run has no cursor')

    // walking every page with a filter gives each matching run once
    const seen: string[] = []
    let cursor: string | undefined
    do {
      const page = (await index.list({ schema: 'dada' }, { limit: 2, cursor }))
      seen.push(...page.runs.map((r) => r.run_id))
      cursor = page.next_cursor ?? undefined
    } while (cursor !== undefined)
    const newest = (await ids(index))[0]!
    t.same(seen, [newest, later[1], later[0], created[6], created[4], created[2]])
  })

  t.test(`${driver.name}: cursors, limits and dates that are not valid are coded 400 errors`, async (t) => {
    const { storage, index } = await wired(t)
    const run = await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'x' })
    t.equal(decodeCursor(encodeCursor('desc', 1234), 'desc'), 1234)
    t.equal(decodeCursor(encodeCursor('asc', 0), 'asc'), 0)
    t.same((await index.list({}, { cursor: encodeCursor('desc', 0) })).runs, [], 'a valid cursor past the last run: empty')
    t.same((await index.list({}, { cursor: encodeCursor('asc', Number.MAX_SAFE_INTEGER), order: 'asc' })).runs, [], 'the same, oldest first')
    const text = (raw: string): string => Buffer.from(raw).toString('base64url')
    const bad = [
      'nope',
      '',
      encodeCursor('asc', 5), // given out for the other order
      text('d-1'),
      text('d05'),
      text('d5\n'),
      text('x5'),
      text('d99999999999999999'), // past 2^53: not a key this service gives out
      text(run.run_id),
      `${encodeCursor('desc', 5)}!`,
      `${encodeCursor('desc', 5)}==`
    ]
    for (const cursor of bad) {
      await t.rejects((index.list({}, { cursor })), { code: 'INVALID_CURSOR', statusCode: 400 }, JSON.stringify(cursor))
    }
    for (const limit of [0, 201, 1.5, Number.NaN]) {
      await t.rejects((index.list({}, { limit })), { code: 'INVALID_FILTER', statusCode: 400 }, `limit ${limit}`)
    }
    t.equal((await index.list({}, { limit: 200 })).runs.length, 1)
    for (const from of ['yesterday', '2025-02-30', '2025-13-01', '2025-11-04T10:00:00', '2025-11-04T23:59:60Z', '04.11.2025']) {
      await t.rejects((index.list({ from })), { code: 'INVALID_FILTER', statusCode: 400 }, from)
      await t.rejects((index.list({ to: from })), { code: 'INVALID_FILTER' }, `to ${from}`)
    }
  })

  t.test(`${driver.name}: a deleted index is rebuilt from the run folders`, async (t) => {
    const runsDir = await tempRunsDir(t)
    const { storage, index, indexPath } = await wired(t, runsDir)
    const run = await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'Blume', user_id: 'DOE_J' })
    await storage.addMedia(run.run_id, await readFile(fixtures.png.file), { config: 'c', backend: 'comfyui' })
    await storage.setStatus(run.run_id, 'completed')
    const before = (await index.list())
    await index.close()
    t.notOk(await index.isOpen())
    await index.close()
    await driver.checkClosed(t, indexPath, runsDir)
    const restarted = newStorage(runsDir)
    t.same((await restarted.init()).removed, [], 'the storage sweep leaves the index alone')
    t.same(await restarted.listRunIds(), [run.run_id], 'and does not take it for a run')

    await driver.destroy(indexPath)
    const rebuilt = await openIndex(t, runsDir)
    t.match(rebuilt.openReport, { rebuilt: 'missing', fullScan: true, added: 1, removed: 0, skipped: [] })
    t.same((await rebuilt.list()), before)
    t.same((await rebuilt.list({ media_type: 'image', backend: 'comfyui', q: 'blum' })).runs.map((r) => r.run_id), [run.run_id])

    // deleted while open: closing cannot write its flag there, and must not throw
    await driver.destroy(indexPath)
    await t.resolves(rebuilt.close())
    t.notOk(await rebuilt.isOpen())
    const again = await openIndex(t, runsDir)
    t.match(again.openReport, { rebuilt: 'missing', added: 1 })
  })

  t.test(`${driver.name}: at start the index catches up with folders added or removed behind its back`, async (t) => {
    const runsDir = await tempRunsDir(t)
    const { storage, index } = await wired(t, runsDir)
    const kept = await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'kept' })
    const removed = await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'removed' })
    await index.close()

    await rm(join(runsDir, removed.run_id), { recursive: true })
    const copied = await writeRunFolder(runsDir, { timestamp: new Date().toISOString(), input_text: 'copied in', outputs: [output(0, 'image', 'openai')] })
    await mkdir(join(runsDir, 'not-a-run'))
    const reopened = await openIndex(t, runsDir)
    t.same(reopened.openReport, { rebuilt: null, fullScan: false, journaled: 0, added: 1, updated: 0, removed: 1, skipped: [] })
    t.same(await ids(reopened), [copied.run_id, kept.run_id])
    t.same((await reopened.list()).runs[0]!.media_types, ['image'])
  })

  t.test(`${driver.name}: after a crash the runs the journal names are read again, not every run; unreadable folders are skipped and reported`, async (t) => {
    const runsDir = await tempRunsDir(t)
    const { storage, index } = await wired(t, runsDir)
    const run = await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'x' })
    const other = await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'y' })
    const gone = await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'z' })
    // Its live changes done first: what a crash cuts off is a write whose mark is in the journal.
    await index.list()
    // A crash between the metadata write and its index update: the journal has the run, the index the old state.
    // The first index is never closed.
    await index.begin(run.run_id)
    const changed = { ...run, status: 'failed', updated_at: new Date(Date.now() + 1000).toISOString() }
    await writeFile(join(runsDir, run.run_id, 'metadata.json'), JSON.stringify(changed))
    await index.begin(gone.run_id)
    await rm(join(runsDir, gone.run_id), { recursive: true })
    // Changed by hand, without the service: no journal entry, so not read again (`runstore reindex` is for that).
    await writeFile(join(runsDir, other.run_id, 'metadata.json'), JSON.stringify({ ...other, status: 'blocked', updated_at: changed.updated_at }))
    const broken = await writeRunFolder(runsDir, { timestamp: new Date().toISOString() })
    await writeFile(join(runsDir, broken.run_id, 'metadata.json'), '{"metadata_version": 1, "run_id": ')
    const impostor = uuidv7()
    await writeRunFolder(runsDir, { timestamp: new Date().toISOString(), run_id: impostor })
    const moved = uuidv7()
    await mkdir(join(runsDir, moved))
    await writeFile(join(runsDir, moved, 'metadata.json'), JSON.stringify({ ...other, run_id: impostor }))
    const incomplete = uuidv7()
    await mkdir(join(runsDir, incomplete))
    await writeFile(join(runsDir, incomplete, 'metadata.json'), JSON.stringify({ run_id: incomplete, status: 'created' }))

    const reads: string[] = []
    const source = newStorage(runsDir)
    const counting: RunSource = { listRunIds: async () => await source.listRunIds(), readMetadata: async (id) => { reads.push(id); return await source.readMetadata(id) } }
    await driver.crash?.(await driver.location(t, runsDir))
    const reopened = await open(await driver.location(t, runsDir), counting)
    t.teardown(async () => { await reopened.close() })
    t.match(reopened.openReport, { rebuilt: null, fullScan: false, journaled: 2, added: 1, updated: 0, removed: 0 })
    t.same(reads.filter((id) => id === other.run_id), [], 'a run without a journal entry is not read again')
    t.same(reopened.openReport.skipped.map((s) => s.run_id).sort(), [broken.run_id, moved, incomplete].sort())
    t.match(reopened.openReport.skipped.find((s) => s.run_id === moved), { reason: 'metadata.json names another run' })
    t.same(await ids(reopened, { status: 'failed' }), [run.run_id])
    t.same((await ids(reopened)).sort(), [run.run_id, other.run_id, impostor].sort(), 'the removed run is gone from the index')
    t.equal(reads.length, 2 + 4, 'read: the two journaled runs and the four folders the index lacked')
  })

  t.test(`${driver.name}: an update that fails makes the next start read every run again`, async (t) => {
    const runsDir = await tempRunsDir(t)
    const { storage, index } = await wired(t, runsDir)
    const run = await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'x' })
    await t.rejects(index.upsert({ ...run, outputs: undefined } as unknown as RunMetadata))
    t.same(await ids(index), [run.run_id], 'the failed update changed nothing')
    await index.close()
    await t.rejects(index.upsert(run), 'a closed index refuses updates')
    await t.rejects(index.remove(run.run_id))
    const reopened = await openIndex(t, runsDir)
    t.match(reopened.openReport, { rebuilt: null, fullScan: true })
  })


  t.test(`${driver.name}: a build cut short resumes where it stopped, and listings say it is incomplete meanwhile`, async (t) => {
    const runsDir = await tempRunsDir(t)
    const made: string[] = []
    for (let i = 0; i < 150; i++) made.push((await writeRunFolder(runsDir, { timestamp: new Date(Date.UTC(2025, 0, 1) + i * 60_000).toISOString(), input_text: `run ${i}` })).run_id)
    const source = newStorage(runsDir)
    const indexPath = await driver.location(t, runsDir)
    const first = (await driver.open(indexPath, source)).index
    t.match(first.progress(), { phase: 'building', complete: false, indexed_runs: 0, stored_runs: null })
    let reads = 0
    const stopping: RunSource = {
      listRunIds: async () => await source.listRunIds(),
      readMetadata: async (id) => {
        // The service stops during the second batch.
        if (++reads === 70) void first.close()
        return await source.readMetadata(id)
      }
    }
    await first.catchUp(stopping)
    t.equal(reads, 128, 'the batch under way was finished, no more')

    const second = (await driver.open(indexPath, source)).index
    t.teardown(async () => { await second.close() })
    t.match(second.progress(), { phase: 'building', complete: false, indexed_runs: 64 }, 'the first batch was kept')
    const page = await second.list({}, { limit: 10 })
    t.same(page.runs.map((r) => r.run_id), made.slice(-10).reverse(), 'the newest runs are listed first while building')
    t.equal(page.total, 64)
    let secondReads = 0
    const counting: RunSource = { listRunIds: async () => await source.listRunIds(), readMetadata: async (id) => { secondReads++; return await source.readMetadata(id) } }
    const report = await second.catchUp(counting)
    t.match(report, { rebuilt: 'missing', fullScan: true, added: 86 })
    t.equal(secondReads, 86, 'only the runs the first build had not reached were read')
    t.match(second.progress(), { phase: 'ready', complete: true, indexed_runs: 150, stored_runs: null })
    t.equal((await second.list({}, { limit: 200 })).runs.length, 150)
    await second.close()
    const third = (await driver.open(indexPath, source)).index
    t.teardown(async () => { await third.close() })
    t.match(third.progress(), { phase: 'catching-up', complete: true, indexed_runs: 150 }, 'a finished build is not started again')
  })
}
