import t, { type Test } from 'tap'
import { cp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createRunstore, type Runstore } from '../../../../runstore.js'
import { ZipReader } from '../../../../services/storage/archive/zip-reader.js'
import type { RunEvent } from '../../../../services/storage/run-events.js'
import { fixtures } from '../../../fixtures/media.js'
import { tempRunsDir, testConfig } from '../../../helper.js'
import { localView, runFiles } from '../../../stored-view.js'

const DAY_MS = 24 * 60 * 60 * 1000
// "Now" for the archive: 40 days after the runs were made, so ARCHIVE_AFTER_DAYS=30 takes them.
const later = (days = 40): Date => new Date(Date.now() + days * DAY_MS)

/** A store with three finished runs (an image each, one with a file copied in by hand) and one still running. */
async function store (t: Test, env: Record<string, string> = {}): Promise<{ runsDir: string, runstore: Runstore, finished: string[], running: string, heard: string[], copies: Map<string, Map<string, Buffer>> }> {
  const runsDir = await tempRunsDir(t)
  const runstore = await createRunstore(testConfig(runsDir, { ARCHIVE_AFTER_DAYS: '30', ...env }))
  t.teardown(async () => { await runstore.close() })
  await runstore.startup
  const heard: string[] = []
  runstore.events.subscribe('test', (event: RunEvent) => { heard.push(event.type === 'run.archived' ? `${event.type} ${event.run_id} ${event.archive}` : `${event.type} ${event.run_id}`) })
  const png = await readFile(fixtures.png.file)
  const finished: string[] = []
  for (const [i, schema] of ['dada', 'bauhaus', 'dada'].entries()) {
    const run = await runstore.storage.createRun({ schema, execution_mode: 'eco', input_text: `Blume ${i}`, status: 'running' })
    await runstore.storage.addMedia(run.run_id, png, { config: 'upload', backend: 'upload' })
    await runstore.storage.update(run.run_id, { transformed_text: `Blüte ${i}`, status: 'completed' })
    finished.push(run.run_id)
  }
  await writeFile(join(runsDir, finished[0]!, 'notes.txt'), 'copied in by hand')
  const running = (await runstore.storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'läuft', status: 'running' })).run_id
  const copies = new Map<string, Map<string, Buffer>>()
  for (const id of finished) copies.set(id, await runFiles(localView(runsDir), id))
  heard.length = 0
  return { runsDir, runstore, finished, running, heard, copies }
}

const month = (): string => new Date().toISOString().slice(0, 7)

t.test('archive packs finished runs into the month\'s ZIP with a manifest, and they leave the live store', async (t) => {
  const { runsDir, runstore, finished, running, heard, copies } = await store(t)
  const name = `runs-${month()}.zip`

  const dry = await runstore.archives.archive({ dryRun: true, now: later() })
  t.same(dry, { dry_run: true, archive_after_days: 30, archives: [{ archive: name, month: month(), runs: finished }] })
  t.same((await readdir(runsDir)).filter((n) => finished.includes(n)).length, 3, 'a dry run changes nothing')
  t.same(await runstore.archives.listArchives(), [])
  t.same((await runstore.archives.archive({ now: later(20) })).archives, [], 'runs younger than ARCHIVE_AFTER_DAYS stay')

  const report = await runstore.archives.archive({ now: later() })
  t.same(report.archives, [{ archive: name, month: month(), runs: finished }])
  t.same(await runstore.storage.listRunIds(), [running], 'only the running run is live')
  t.same(heard, finished.map((id) => `run.archived ${id} ${name}`))

  const zip = await ZipReader.open(join(runsDir, 'archive', name))
  t.teardown(() => { zip.close() })
  const manifest = JSON.parse((await zip.read('manifest.json')).toString('utf8'))
  t.same(manifest.runs.map((r: { run_id: string }) => r.run_id), finished)
  for (const run of manifest.runs as Array<{ run_id: string, files: Array<{ path: string, size: number, sha256: string }> }>) {
    const original = copies.get(run.run_id)!
    t.same(run.files.map((f) => f.path).sort(), [...original.keys()].map((n) => `${run.run_id}/${n}`).sort(), 'every file of the folder, a hand-copied one too')
    for (const file of run.files) {
      const bytes = original.get(file.path.split('/')[1]!)!
      t.same(await zip.read(file.path), bytes)
      t.equal(file.size, bytes.length)
      t.equal(file.sha256, (await import('node:crypto')).createHash('sha256').update(bytes).digest('hex'))
    }
  }

  await t.rejects(runstore.storage.getMetadata(finished[0]!), { code: 'RUN_NOT_FOUND' })
  t.same((await runstore.index.list({ archived: 'only' })).runs.map((r) => [r.run_id, r.archive]), [...finished].reverse().map((id) => [id, name]))
  t.same((await runstore.index.list()).runs.map((r) => r.run_id), [running], 'the default listing has live runs only')
  t.equal(await runstore.index.archiveOf(finished[1]!), name)
  t.same(await runstore.archives.listArchives(), [{ archive: name, month: month(), part: 1, runs: 3, bytes: (await readFile(join(runsDir, 'archive', name))).length, created_at: manifest.created_at }])

  t.same((await runstore.archives.archive({ now: later() })).archives, [], 'a second pass finds nothing more to do')
})

t.test('restore brings a run back byte-identical and out of its archive; a month brings back all of it', async (t) => {
  const { runsDir, runstore, finished, copies, heard, running } = await store(t)
  await runstore.archives.archive({ now: later() })
  const name = `runs-${month()}.zip`
  const [first, second, third] = finished as [string, string, string]
  heard.length = 0

  t.same(await runstore.archives.restore(second.toUpperCase()), { restored: [second], skipped: [] })
  t.same(await runFiles(localView(runsDir), second), copies.get(second), 'byte-identical')
  t.same(heard, [`run.restored ${second}`])
  t.equal((await runstore.storage.getMetadata(second)).transformed_text, 'Blüte 1')
  t.same((await runstore.index.list({ archived: 'include' })).runs.map((r) => [r.run_id, r.archive]), [[running, null], [third, name], [second, null], [first, name]])
  t.same((await runstore.archives.listArchivedRuns()).map((r) => r.run_id).sort(), [first, third].sort(), 'the archive was rewritten without it')
  t.same((await runstore.archives.listArchives())[0]!.runs, 2)

  await t.rejects(runstore.archives.restore(second), { code: 'RUN_EXISTS', statusCode: 409 }, 'a live run is never restored over')
  await t.rejects(runstore.archives.restore('2019-01'), { code: 'ARCHIVED_RUN_NOT_FOUND', statusCode: 404 })
  await t.rejects(runstore.archives.restore('not a run'), { code: 'INVALID_RUN_ID' })

  t.same(await runstore.archives.restore(month()), { restored: [first, third], skipped: [] })
  for (const id of finished) t.same(await runFiles(localView(runsDir), id), copies.get(id), `${id} byte-identical`)
  t.same(await runstore.archives.listArchives(), [], 'an archive left empty is removed')
  t.same((await runstore.index.list({ archived: 'only' })).runs, [])
  await t.rejects(runstore.archives.restore(first), { code: 'RUN_EXISTS' })
})

t.test('a month archived again gets a new part; restoring a month skips runs that are live', async (t) => {
  const { runstore, finished } = await store(t)
  const [first, second, third] = finished as [string, string, string]
  await runstore.archives.archive({ now: later() })
  await runstore.archives.restore(second)
  const again = await runstore.archives.archive({ now: later() })
  t.same(again.archives, [{ archive: `runs-${month()}-2.zip`, month: month(), runs: [second] }])
  t.same((await runstore.archives.listArchives()).map((a) => [a.archive, a.part, a.runs]), [[`runs-${month()}-2.zip`, 2, 1], [`runs-${month()}.zip`, 1, 2]])
  t.same((await runstore.archives.readArchivedMetadata([{ run_id: second, archive: `runs-${month()}-2.zip` }])).map((m) => m.input_text), ['Blume 1'])

  // A run of the month live again by other means (copied back by hand): the rest comes back, it stays archived.
  await runstore.archives.restore(first)
  await runstore.storage.blobs.createRun(second, [['metadata.json', JSON.stringify(await runstore.storage.readMetadata(first))]]).catch(() => {})
  const report = await runstore.archives.restore(month())
  t.same(report.restored, [third])
  t.same(report.skipped, [{ run_id: second, reason: 'a live run has this id' }])
})

t.test('a pass cut off after its archive was written finds the runs archived already and only removes them', async (t) => {
  const { runsDir, runstore: first, finished, copies, running } = await store(t, { ARCHIVE_AFTER_DAYS: '30' })
  await first.trash.deleteRun(running) // else the next start ends it as interrupted, and it is archived too
  const kept = await tempRunsDir(t)
  for (const id of finished) await cp(join(runsDir, id), join(kept, id), { recursive: true })
  await first.archives.archive({ now: later() })
  await first.close()
  // As if the process died after the archive's rename: the folders are all still there.
  for (const id of finished) await cp(join(kept, id), join(runsDir, id), { recursive: true })
  const runstore = await createRunstore(testConfig(runsDir, { ARCHIVE_AFTER_DAYS: '30' }))
  t.teardown(async () => { await runstore.close() })
  await runstore.startup
  t.same((await runstore.index.list({ archived: 'only' })).runs, [], 'live runs are never listed as archived')

  const report = await runstore.archives.archive({ now: later() })
  t.same(report.archives, [{ archive: `runs-${month()}.zip`, month: month(), runs: finished }])
  t.same((await runstore.archives.listArchives()).map((a) => a.archive), [`runs-${month()}.zip`], 'no second part')
  t.same(await runstore.storage.listRunIds(), (await runstore.storage.listRunIds()).filter((id) => !finished.includes(id)))

  // A run changed after its copy was archived is packed anew.
  await runstore.archives.restore(finished[0]!)
  await cp(join(kept, finished[1]!), join(runsDir, finished[1]!), { recursive: true })
  await writeFile(join(runsDir, finished[1]!, 'notes.txt'), 'new')
  await runstore.storage.readMetadata(finished[1]!)
  const repacked = await runstore.archives.archive({ now: later() })
  t.same(repacked.archives.map((a) => [a.archive, a.runs]), [[`runs-${month()}-2.zip`, [finished[0], finished[1]]]])
  await runstore.archives.restore(finished[1]!)
  t.same(await runFiles(localView(runsDir), finished[1]!), new Map([...copies.get(finished[1]!)!, ['notes.txt', Buffer.from('new')]]), 'the newest copy comes back')
  t.same((await runstore.archives.listArchivedRuns()).map((r) => r.run_id).sort(), [finished[0]!, finished[2]!].sort(), 'and the older copy is gone too')
})

t.test('a damaged archive restores nothing of the run', async (t) => {
  const { runsDir, runstore, finished } = await store(t)
  await runstore.archives.archive({ now: later() })
  const path = join(runsDir, 'archive', `runs-${month()}.zip`)
  const bytes = await readFile(path)
  // The PNG is stored uncompressed: its IEND chunk type is found in the archive as it is.
  const at = bytes.indexOf('IEND')
  bytes[at] = bytes[at]! ^ 0x20
  await writeFile(path, bytes)
  await t.rejects(runstore.archives.restore(finished[0]!), { code: 'ARCHIVE_DAMAGED', statusCode: 500 })
  t.notOk(await runstore.storage.runExists(finished[0]!), 'nothing restored')
})

t.test('prune removes archives whose month is older than RETENTION_DAYS, and empties the trash', async (t) => {
  const { runsDir, runstore, finished, running, heard } = await store(t, { RETENTION_DAYS: '60', TRASH_DAYS: '1' })
  await runstore.archives.archive({ now: later() })
  await runstore.trash.deleteRun(running)
  heard.length = 0
  const name = `runs-${month()}.zip`

  const young = await runstore.archives.prune({ now: later(2) })
  t.same([young.archives, young.trash.removed.map((r) => r.run_id)], [[], [running]], 'the month is younger than 60 days; the trash is emptied after TRASH_DAYS')

  const dry = await runstore.archives.prune({ dryRun: true, now: later(100) })
  t.same(dry.archives, [{ archive: name, month: month(), runs: 3 }])
  t.equal((await runstore.archives.listArchives()).length, 1, 'a dry run changes nothing')
  const pruned = await runstore.archives.prune({ now: later(100) })
  t.same(pruned.archives, [{ archive: name, month: month(), runs: 3 }])
  t.same(await readdir(join(runsDir, 'archive')), [])
  t.same(heard.sort(), finished.map((id) => `run.deleted ${id}`).sort())
  t.same((await runstore.index.list({ archived: 'include' })).runs, [])
})

t.test('a rebuilt index lists the archived runs again; ARCHIVE_AFTER_DAYS=0 archives nothing', async (t) => {
  const { runsDir, runstore, finished } = await store(t)
  await runstore.archives.archive({ now: later() })
  await runstore.close()
  await rm(join(runsDir, '.index.sqlite'))
  const again = await createRunstore(testConfig(runsDir))
  t.teardown(async () => { await again.close() })
  const report = await again.startup
  t.equal(report.index.rebuilt, 'missing')
  t.same((await again.index.list({ archived: 'only' })).runs.map((r) => [r.run_id, r.archive, r.transformed_text]), [...finished].reverse().map((id, i) => [id, `runs-${month()}.zip`, `Blüte ${2 - i}`]))
  t.same(await again.archives.archive({ now: later(1000) }), { dry_run: false, archive_after_days: 0, archives: [] })
  t.same((await again.archives.prune({ now: later(1000) })).archives, [], 'RETENTION_DAYS=0 keeps archives')
})

t.test('ARCHIVE_DIR may not be RUNS_DIR nor a run folder', async (t) => {
  const runsDir = await tempRunsDir(t)
  await t.rejects(createRunstore(testConfig(runsDir, { ARCHIVE_DIR: runsDir })), /ARCHIVE_DIR .* is RUNS_DIR or inside a run folder/)
})
