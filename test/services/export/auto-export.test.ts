import t, { type Test } from 'tap'
import { access, mkdir, readdir, readFile, stat, truncate, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { loadConfig } from '../../../config.js'
import { createRunstore, type Runstore } from '../../../runstore.js'
import { autoExportFormats, PENDING_FOLDER } from '../../../services/export/auto-export.js'
import { FolderWriter } from '../../../services/export/folder-writer.js'
import { fixtures } from '../../fixtures/media.js'
import { tempRunsDir, testConfig } from '../../helper.js'
import { csvRows, pdfPages } from '../../export-readers.js'
import { unzip } from '../../unzip.js'

interface Logged { level: string, details: Record<string, unknown>, message: string }

async function start (t: Test, runsDir: string, exportDir: string, formats = 'csv,xlsx,html,pdf,zip'): Promise<{ runstore: Runstore, logs: Logged[] }> {
  const logs: Logged[] = []
  const log = (level: string) => (details: object, message: string) => { logs.push({ level, details: details as Record<string, unknown>, message }) }
  const runstore = await createRunstore(testConfig(runsDir, { AUTO_EXPORT_FORMATS: formats, EXPORT_DIR: exportDir }), { logger: { info: log('info'), warn: log('warn'), error: log('error') } as never })
  t.teardown(async () => { await runstore.close() })
  return { runstore, logs }
}

async function exists (path: string): Promise<boolean> {
  return await access(path).then(() => true, () => false)
}

async function endedRun (runstore: Runstore, text = 'Eine Blume für Jürgen'): Promise<string> {
  const run = await runstore.storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: text, user_id: 'lab', status: 'running' })
  await runstore.storage.addMedia(run.run_id, { kind: 'file', path: fixtures.png.file }, { config: 'upload', backend: 'upload' })
  await runstore.storage.setStatus(run.run_id, 'completed')
  return run.run_id
}

const dayOf = async (runstore: Runstore, runId: string): Promise<string> => (await runstore.storage.getMetadata(runId)).timestamp.slice(0, 10)

t.test('a run that ends is exported into EXPORT_DIR/<day>/<run_id>/: the views of GET /api/exports, the run folder and its ZIP', async (t) => {
  const runsDir = await tempRunsDir(t)
  const exportDir = join(runsDir, '..', `${runsDir.split('/').pop()!}-exports`)
  const { runstore, logs } = await start(t, runsDir, exportDir)
  await runstore.startup
  const runId = await endedRun(runstore)
  const open = await runstore.storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'noch offen' })
  await runstore.autoExport!.idle()
  // a change after the end is no second end
  await runstore.storage.addMedia(runId, { kind: 'file', path: fixtures.jpeg.file }, { config: 'upload', backend: 'upload' })
  await runstore.autoExport!.idle()

  const folder = join(exportDir, await dayOf(runstore, runId), runId)
  t.same((await readdir(folder)).sort(), [`${runId}.zip`, 'index.html', 'report.pdf', 'runs', 'runs.csv', 'runs.xlsx'])
  const stored = ['input_text.txt', 'metadata.json', 'output_image.png']
  t.same((await readdir(join(folder, 'runs', runId))).sort(), stored, 'the run folder the gallery shows')
  const storedMetadata = JSON.parse(await readFile(join(folder, 'runs', runId, 'metadata.json'), 'utf8'))
  t.equal(storedMetadata.status, 'completed')
  t.ok((await readFile(join(folder, 'runs', runId, 'output_image.png'))).equals(await readFile(join(runsDir, runId, 'output_image.png'))), 'byte-identical')
  t.same(csvRows(await readFile(join(folder, 'runs.csv'))).map((row) => [row.run_id, row.input_text, row.status]), [[runId, 'Eine Blume für Jürgen', 'completed']])
  t.equal((await pdfPages(await readFile(join(folder, 'report.pdf')))).length, 1)
  t.match(await readFile(join(folder, 'index.html'), 'utf8'), `runs/${runId}/output_image.png`)
  const zip = await unzip(await readFile(join(folder, `${runId}.zip`)))
  t.same([...zip.keys()], [...stored.map((n) => `runs/${runId}/${n}`).sort((a, b) => a.endsWith('metadata.json') ? -1 : b.endsWith('metadata.json') ? 1 : a.localeCompare(b)), 'runs.csv', 'runs.xlsx', 'index.html', 'report.pdf'])
  t.ok(zip.get(`runs/${runId}/output_image.png`)!.equals(await readFile(join(runsDir, runId, 'output_image.png'))))

  t.same(await readdir(join(exportDir, PENDING_FOLDER)), [], 'no marker left')
  t.notOk(await exists(join(exportDir, '.tmp', runId)))
  t.same(logs.filter((l) => l.message === 'run exported').map((l) => l.details.run_id), [runId], 'exported once; the run still open is not')
  t.notOk((await readdir(join(exportDir, await dayOf(runstore, open.run_id)))).includes(open.run_id))
})

t.test('only the formats named: zip alone is the run folder as a ZIP', async (t) => {
  const runsDir = await tempRunsDir(t)
  const exportDir = join(runsDir, 'exports')
  const { runstore } = await start(t, runsDir, exportDir, 'zip')
  const runId = await endedRun(runstore)
  await runstore.autoExport!.idle()
  const folder = join(exportDir, await dayOf(runstore, runId), runId)
  t.same(await readdir(folder), [`${runId}.zip`])
  t.same([...(await unzip(await readFile(join(folder, `${runId}.zip`)))).keys()].sort(), ['input_text.txt', 'metadata.json', 'output_image.png'].map((n) => `runs/${runId}/${n}`))

  const csvOnly = await start(t, await tempRunsDir(t), join(runsDir, 'csv-exports'), ' csv ')
  const other = await endedRun(csvOnly.runstore)
  await csvOnly.runstore.autoExport!.idle()
  t.same(await readdir(join(runsDir, 'csv-exports', await dayOf(csvOnly.runstore, other), other)), ['runs.csv'])
})

t.test('after a crash: every pending marker is exported again at start, runs ended by the start too; half-written folders go', async (t) => {
  const runsDir = await tempRunsDir(t)
  const exportDir = join(runsDir, '..', `${runsDir.split('/').pop()!}-exports`)
  const first = await createRunstore(testConfig(runsDir))
  const ended = await endedRun(first)
  const left = await first.storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'mitten drin', status: 'running' })
  const deleted = await endedRun(first, 'gelöscht')
  await first.storage.deleteRun(deleted)
  await first.close()
  // what a process killed while exporting leaves
  await mkdir(join(exportDir, PENDING_FOLDER), { recursive: true })
  await writeFile(join(exportDir, PENDING_FOLDER, ended), '')
  await writeFile(join(exportDir, PENDING_FOLDER, deleted), '')
  await writeFile(join(exportDir, PENDING_FOLDER, '.tmp-abc-123'), '')
  await mkdir(join(exportDir, '.tmp', `${ended}-half`), { recursive: true })
  await writeFile(join(exportDir, '.tmp', `${ended}-half`, 'runs.csv'), 'half')

  const { runstore, logs } = await start(t, runsDir, exportDir, 'csv')
  const report = await runstore.startup
  t.same(report.pendingExports.sort(), [ended, deleted].sort())
  t.same(runstore.interruptedRuns, [left.run_id])
  await runstore.autoExport!.idle()
  t.same(await readdir(join(exportDir, await dayOf(runstore, ended), ended)), ['runs.csv'])
  const interrupted = csvRows(await readFile(join(exportDir, await dayOf(runstore, left.run_id), left.run_id, 'runs.csv')))
  t.match(interrupted, [{ run_id: left.run_id, status: 'failed', errors: /^RUN_INTERRUPTED/ }], 'the run the start ended is exported as it ended')
  t.same(await readdir(join(exportDir, PENDING_FOLDER)), [])
  t.same(await readdir(join(exportDir, '.tmp')), [])
  t.match(logs.filter((l) => l.level !== 'info' || l.message === 'run exported').map((l) => l.message), ['auto exports a stopped process had not finished are done again'])
  t.ok(logs.some((l) => l.level === 'warn' && l.message === 'a run was deleted before its auto export' && l.details.run_id === deleted))
})

t.test('a failing export is logged and tried again at the next start; the run is untouched', async (t) => {
  const runsDir = await tempRunsDir(t)
  const exportDir = join(runsDir, 'exports')
  const { runstore, logs } = await start(t, runsDir, exportDir, 'csv,html')
  const png = await readFile(fixtures.png.file)
  const run = await runstore.storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'kaputt', status: 'running' })
  const output = await runstore.storage.addMedia(run.run_id, png, { config: 'upload', backend: 'upload' })
  await truncate(join(runsDir, run.run_id, output.filename), 100)
  t.match(await runstore.storage.setStatus(run.run_id, 'completed'), { status: 'completed' }, 'the run ends whatever its export does')
  await runstore.autoExport!.idle()
  t.match(logs.find((l) => l.level === 'error'), { message: 'the auto export of a run failed; the next start tries again', details: { run_id: run.run_id } })
  t.same(await readdir(join(exportDir, PENDING_FOLDER)), [run.run_id], 'the marker stays')
  t.same(await readdir(join(exportDir, '.tmp')), [], 'nothing half-written')
  t.notOk(await exists(join(exportDir, await dayOf(runstore, run.run_id), run.run_id)))
  await runstore.close()

  await writeFile(join(runsDir, run.run_id, output.filename), png)
  const again = await start(t, runsDir, exportDir, 'csv,html')
  t.same((await again.runstore.startup).pendingExports, [run.run_id])
  await again.runstore.autoExport!.idle()
  t.same((await readdir(join(exportDir, await dayOf(again.runstore, run.run_id), run.run_id))).sort(), ['index.html', 'runs', 'runs.csv'])
  t.same(await readdir(join(exportDir, PENDING_FOLDER)), [])
})

t.test('close waits for the export under way; the queued ones stay noted and the next start does them', async (t) => {
  const runsDir = await tempRunsDir(t)
  const exportDir = join(runsDir, 'exports')
  const { runstore } = await start(t, runsDir, exportDir, 'csv')
  const runs = []
  for (let i = 0; i < 4; i++) runs.push(await endedRun(runstore, `Lauf ${i}`))
  await runstore.close()
  await runstore.autoExport!.add(runs[0]!) // closed: takes nothing
  const day = await dayOf(runstore, runs[0]!)
  const done = await readdir(join(exportDir, day)).catch(() => [])
  const pending = await readdir(join(exportDir, PENDING_FOLDER))
  t.same([...done, ...pending].sort(), [...runs].sort(), 'each run exported or noted, none both, none lost')

  const again = await start(t, runsDir, exportDir, 'csv')
  await again.runstore.startup
  await again.runstore.autoExport!.idle()
  t.same((await readdir(join(exportDir, day))).sort(), [...runs].sort())
})

t.test('AUTO_EXPORT_FORMATS is checked at start; empty: off, nothing written', async (t) => {
  t.throws(() => loadConfig({ AUTO_EXPORT_FORMATS: 'csv,docx' }), /AUTO_EXPORT_FORMATS/)
  t.throws(() => loadConfig({ AUTO_EXPORT_FORMATS: 'folders' }), /AUTO_EXPORT_FORMATS/)
  t.match(loadConfig({ AUTO_EXPORT_FORMATS: ' pdf , zip' }), { AUTO_EXPORT_FORMATS: ' pdf , zip', EXPORT_DIR: './exports' })
  t.same(autoExportFormats(' pdf , zip,csv'), ['csv', 'pdf', 'zip'])
  t.equal(loadConfig({}).AUTO_EXPORT_FORMATS, '')

  const runsDir = await tempRunsDir(t)
  const runstore = await createRunstore(testConfig(runsDir, { EXPORT_DIR: join(runsDir, 'exports') }))
  t.teardown(async () => { await runstore.close() })
  t.equal(runstore.autoExport, null)
  await endedRun(runstore)
  t.same((await runstore.startup).pendingExports, [])
  t.notOk(await exists(join(runsDir, 'exports')))
})

t.test('a folder export fails for an entry outside its folder, a wrong byte count, a source that cannot open', async (t) => {
  const dir = await tempRunsDir(t)
  const mtime = new Date('2025-11-04T12:00:00Z')
  const outside = new FolderWriter(join(dir, 'a'))
  void outside.add('../escape.txt', { mtime, compress: true }, async () => Readable.from([Buffer.from('x')]))
  outside.end()
  await t.rejects(outside.done, /outside its folder/)
  t.notOk(await exists(join(dir, 'escape.txt')))
  t.equal(await outside.add('late.txt', { mtime, compress: true }, async () => Readable.from([])), false, 'closed: takes nothing')

  const short = new FolderWriter(join(dir, 'b'))
  t.equal(await short.addBuffer('x/y.bin', { mtime, compress: false, size: 5 }, Buffer.from('abc')), true)
  await t.rejects(short.done, /3 bytes read, 5 expected/)

  const unopened = new FolderWriter(join(dir, 'c'))
  void unopened.add('z.txt', { mtime, compress: true }, async () => { throw new Error('gone') })
  const after = unopened.add('never.txt', { mtime, compress: true }, async () => Readable.from([Buffer.from('n')]))
  unopened.end()
  await t.rejects(unopened.done, /gone/)
  t.equal(await after, false, 'entries after a failure are not written')
  unopened.fail(new Error('twice'))

  const whole = new FolderWriter(join(dir, 'd'))
  await whole.addBuffer('sub/ok.txt', { mtime, compress: true, size: 2 }, Buffer.from('ok'))
  whole.end()
  whole.end()
  await whole.done
  t.equal(await readFile(join(dir, 'd', 'sub', 'ok.txt'), 'utf8'), 'ok')
  t.equal((await stat(join(dir, 'd', 'sub', 'ok.txt'))).mtime.getTime(), mtime.getTime(), 'the entry\'s time')
})

t.test('an EXPORT_DIR that cannot be written: logged at start and at the end of a run, the run itself ends as always', async (t) => {
  const runsDir = await tempRunsDir(t)
  const exportDir = join(runsDir, 'not-a-folder')
  await writeFile(exportDir, 'a file where the folder should be')
  const { runstore, logs } = await start(t, runsDir, exportDir, 'csv')
  t.same((await runstore.startup).pendingExports, [])
  t.match(logs.find((l) => l.level === 'error'), { message: 'the auto exports a stopped process left could not be read; the next start tries again', details: { dir: exportDir } })
  const runId = await endedRun(runstore)
  await runstore.autoExport!.idle()
  t.equal((await runstore.storage.getMetadata(runId)).status, 'completed')
  t.ok(logs.some((l) => l.level === 'error' && l.message === 'auto export missed a change' && l.details.run_id === runId))
  t.equal(await readFile(exportDir, 'utf8'), 'a file where the folder should be')

  // a .pending that is no folder: the start says so and goes on
  const otherDir = join(runsDir, 'exports')
  await mkdir(otherDir)
  await writeFile(join(otherDir, PENDING_FOLDER), '')
  const other = await start(t, runsDir, otherDir, 'csv')
  t.same((await other.runstore.startup).pendingExports, [])
  t.ok(other.logs.some((l) => l.level === 'error' && l.message === 'the auto exports a stopped process left could not be read; the next start tries again'))
})
