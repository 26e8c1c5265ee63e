import t, { type Test } from 'tap'
import { createWriteStream } from 'node:fs'
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { createRunstore, type Runstore } from '../../../runstore.js'
import { parseExportFormats, RunExporter } from '../../../services/export/export-archive.js'
import { SqliteRunIndex } from '../../../services/storage/index/sqlite.js'
import { fixtures } from '../../fixtures/media.js'
import { tempRunsDir, testConfig } from '../../helper.js'
import { csvRows, pdfPages, xlsxRows } from '../../export-readers.js'
import { pngFile } from '../../forged-png.js'
import { unzip } from '../../unzip.js'
import ExcelJS from 'exceljs'

async function runstoreOn (t: Test): Promise<{ runstore: Runstore, runsDir: string }> {
  const runsDir = await tempRunsDir(t)
  const runstore = await createRunstore(testConfig(runsDir))
  t.teardown(async () => { await runstore.close() })
  return { runstore, runsDir }
}

async function runWith (runstore: Runstore, input: string, files: Array<string | Buffer>, transformed?: string): Promise<string> {
  const { run_id: runId } = await runstore.storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: input, user_id: 'lab' })
  if (transformed !== undefined) await runstore.storage.setTransformedText(runId, transformed)
  for (const file of files) await runstore.storage.addMedia(runId, typeof file === 'string' ? { kind: 'file', path: file } : file, { config: 'test', backend: 'upload' })
  return runId
}

async function exported (exporter: RunExporter, formats?: string, filters = {}): Promise<Map<string, Buffer>> {
  const { stream } = await exporter.export({ filters, formats: parseExportFormats(formats) })
  return await unzip(Buffer.concat(await stream.toArray()))
}

/** A PNG of the given size, one bit per pixel, all black: tiny on disk, huge once decoded. */
const blackPng = (width: number, height: number): Buffer =>
  pngFile({ width, height, bitDepth: 1, colorType: 0, row: () => Buffer.alloc(Math.ceil(width / 8)) })

/** Changes bytes of a stored file in place (same size): damage the store does not notice. */
async function damage (path: string, at: number, bytes: number[]): Promise<void> {
  const content = await readFile(path)
  content.set(bytes, at < 0 ? content.length + at : at)
  await writeFile(path, content)
}

t.test('without the server: the composition root exports to a file, as a CLI would', async (t) => {
  const { runstore, runsDir } = await runstoreOn(t)
  const runId = await runWith(runstore, 'Eine Blume', [fixtures.png.file], 'A flower')
  const { filename, stream } = await runstore.exporter.export({ filters: { user_id: 'lab' }, formats: parseExportFormats('csv,folders') }, new Date('2025-11-04T14:31:22.123Z'))
  t.equal(filename, 'runstore-export-2025-11-04T14-31-22Z.zip')
  const file = join(runsDir, '..', `${runId}.zip`)
  t.teardown(async () => { await writeFile(file, '') })
  await pipeline(stream, createWriteStream(file))
  const entries = await unzip(await readFile(file))
  t.same([...entries.keys()], [...['metadata.json', 'input_text.txt', 'transformed_text.txt', 'output_image.png'].map((n) => `runs/${runId}/${n}`), 'runs.csv'])
  t.same(csvRows(entries.get('runs.csv')!).map((row) => row.path), [`runs/${runId}/output_image.png`])
})

t.test('texts longer than a spreadsheet cell: cut in runs.xlsx only; a full PDF page stays one page', async (t) => {
  const { runstore } = await runstoreOn(t)
  const long = 'Grüße '.repeat(8000) + 'Ende'
  const runId = await runWith(runstore, 'lang', [fixtures.jpeg.file], long)
  const stages = Array.from({ length: 12 }, (_, i) => ({ stage: `step_${i}`, status: 'completed', output: `Schritt ${i}: ${'viel Text '.repeat(40)}` }))
  await runstore.storage.update(runId, { stages, errors: [{ code: 'SOMETHING', message: 'went wrong' }] })
  const entries = await exported(runstore.exporter, 'csv,xlsx,pdf')
  const [row] = csvRows(entries.get('runs.csv')!)
  t.equal(row!.transformed_text, long, 'the CSV keeps every character')
  t.equal(row!.step_11_text, stages[11]!.output)
  const xlsx = await xlsxRows(entries.get('runs.xlsx')!)
  const cell = xlsx.rows[0]![xlsx.header.indexOf('transformed_text')]!
  t.equal(cell.length, 32767, 'the most a cell holds')
  t.ok(cell.startsWith('Grüße Grüße') && cell.endsWith(' […]'), 'marked as cut')
  const pages = await pdfPages(entries.get('report.pdf')!)
  t.equal(pages.length, 1, 'one page, however much the run says')
  t.match(pages[0], /Grüße …|Grüße…/, 'a text cut with an ellipsis')
  t.match(pages[0], 'step_0')
  t.notMatch(pages[0], 'SOMETHING', 'what does not fit is left off')
})

t.test('a damaged metadata.json fails the export, it is not skipped', async (t) => {
  const { runstore, runsDir } = await runstoreOn(t)
  const runId = await runWith(runstore, 'Bild', [fixtures.png.file])
  await writeFile(join(runsDir, runId, 'metadata.json'), '{"run_id": ')
  const { stream } = await runstore.exporter.export({ filters: {}, formats: ['folders', 'csv'] })
  await t.rejects(stream.toArray(), SyntaxError)
})

t.test('pictures the report cannot show get a placeholder with their facts, the export goes on', async (t) => {
  const { runstore, runsDir } = await runstoreOn(t)
  const huge = await runWith(runstore, 'riesig', [blackPng(7000, 7000)])
  const brokenPng = await runWith(runstore, 'kaputtes PNG', [fixtures.png.file])
  const brokenJpeg = await runWith(runstore, 'kaputtes JPEG', [fixtures.jpeg.file])
  const sound = await runWith(runstore, 'nur Ton', [fixtures.mp3.file])
  await damage(join(runsDir, brokenPng, 'output_image.png'), -20, [1, 2, 3, 4])
  await damage(join(runsDir, brokenJpeg, 'output_image.jpg'), 0, [0, 0])
  const pages = await pdfPages((await exported(runstore.exporter, 'pdf')).get('report.pdf')!)
  t.equal(pages.length, 4)
  const page = (runId: string): string => pages.find((p) => p.includes(runId))!
  t.match(page(huge), /too large to show here .*7000×7000/)
  t.match(page(brokenPng), 'the picture cannot be decoded')
  t.match(page(brokenJpeg), 'the picture cannot be decoded')
  t.match(page(sound), /audio: not shown in a PDF .*mp3 · 2\.\d\d s/)
})

t.test('a run the index still lists but the store no longer has is left out', async (t) => {
  const { runstore, runsDir } = await runstoreOn(t)
  const kept = await runWith(runstore, 'bleibt', [fixtures.png.file])
  const gone = await runWith(runstore, 'geht', [fixtures.png.file])
  // an index that missed the deletion (another process's, or one that is behind)
  const stale = await SqliteRunIndex.open({ path: join(runsDir, '..', `stale-${kept}.sqlite`) })
  t.teardown(async () => { await stale.close() })
  await stale.catchUp(runstore.storage)
  await runstore.storage.deleteRun(gone)
  for (const formats of ['folders,csv', 'csv']) {
    const entries = await exported(new RunExporter({ storage: runstore.storage, index: stale }), formats)
    t.same(csvRows(entries.get('runs.csv')!).map((row) => row.run_id), [kept], formats)
    t.notOk([...entries.keys()].some((name) => name.includes(gone)))
  }
})

t.test('a reader that goes away stops the export and leaves no file open', async (t) => {
  const { runstore } = await runstoreOn(t)
  const big = Buffer.alloc(2 * 1024 * 1024)
  const image = await readFile(fixtures.png.file)
  for (let i = 0; i < 8; i++) await runWith(runstore, `Bild ${i}`, [Buffer.concat([image, big.fill(i)])])
  const openFiles = async (): Promise<number> => (await readdir('/proc/self/fd')).length
  const before = await openFiles()
  const { stream } = await runstore.exporter.export({ filters: {}, formats: ['folders'] })
  let received = 0
  // into the second run's picture, then away (leaving a for-await destroys the stream)
  for await (const chunk of stream) {
    received += (chunk as Buffer).length
    if (received > 3 * 1024 * 1024) break
  }
  t.ok(stream.destroyed, `left after ${received} bytes`)
  for (let tries = 0; tries < 200 && await openFiles() > before; tries++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(await openFiles(), before, 'every file the export opened is closed again')
  // the store is not held up: a new export runs through
  t.equal((await exported(runstore.exporter, 'csv')).size, 1)
})

t.test('a file that fails while it is read ends the stream with the error', async (t) => {
  const { runstore, runsDir } = await runstoreOn(t)
  const runId = await runWith(runstore, 'Bild', [fixtures.png.file])
  // opens like a file, fails on the first read (EISDIR): a read error, as a failing disk gives one
  await rm(join(runsDir, runId, 'output_image.png'))
  await mkdir(join(runsDir, runId, 'output_image.png'))
  const { stream } = await runstore.exporter.export({ filters: {}, formats: ['folders'] })
  await t.rejects(stream.toArray(), { code: 'EISDIR' })
})

t.test('the formats a request names', async (t) => {
  t.same(parseExportFormats(undefined), ['folders', 'csv', 'xlsx', 'html', 'pdf'])
  t.same(parseExportFormats('pdf, csv'), ['csv', 'pdf'], 'in the archive\'s order, spaces allowed')
  t.same(parseExportFormats('html'), ['folders', 'html'], 'the gallery brings the folders it shows')
  t.throws(() => parseExportFormats('csv,docx'), { code: 'INVALID_EXPORT_FORMAT', statusCode: 400, message: /"docx".*folders, csv, xlsx, html, pdf/ })
  t.throws(() => parseExportFormats(' , '), { code: 'INVALID_EXPORT_FORMAT', message: /at least one/ })
})

t.test('texts that look like formulas stay text: an apostrophe in runs.csv, string cells in runs.xlsx', async (t) => {
  const { runstore } = await runstoreOn(t)
  const texts = ['=HYPERLINK("http://evil.example","klick")', '+1+1', '-2+3', '@SUM(A1)', '\tTab', '\rCR', 'Blume = schön']
  for (const text of texts) await runstore.storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: text, user_id: 'lab' })
  await runWith(runstore, 'mit Bild', [fixtures.png.file])
  const archive = await exported(runstore.exporter, 'csv,xlsx')
  const rows = csvRows(archive.get('runs.csv')!)
  t.same(rows.map((row) => row.input_text).sort(), ['mit Bild', "'=HYPERLINK(\"http://evil.example\",\"klick\")", "'+1+1", "'-2+3", "'@SUM(A1)", "'\tTab", "'\rCR", 'Blume = schön'].sort())
  t.match(rows.find((row) => row.input_text === 'mit Bild'), { file_size_bytes: /^\d+$/ }, 'numbers stay as they are')

  const workbook = new ExcelJS.Workbook()
  await workbook.xlsx.load(archive.get('runs.xlsx')! as unknown as ArrayBuffer)
  const sheet = workbook.worksheets[0]!
  const column = (sheet.getRow(1).values as string[]).indexOf('input_text')
  const cells = texts.map((_, i) => sheet.getRow(i + 3).getCell(column))
  t.same(cells.map((cell) => cell.type), texts.map(() => ExcelJS.ValueType.String), 'no cell is a formula')
  // XML reads a CR back as a line feed
  t.same(cells.map((cell) => cell.value).sort(), texts.map((text) => text.replace('\r', '\n')).sort(), 'the text as typed')
})
