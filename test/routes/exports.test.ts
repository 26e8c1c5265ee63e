import t from 'tap'
import { createHash } from 'node:crypto'
import { get, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { build, storedView, tempRunsDir } from '../helper.js'
import type { StoredView } from '../stored-view.js'
import { ADMIN, ADMIN_TOKEN, workshopRuns, type MadeRun } from '../exported-runs.js'
import { csvCells, csvRows, pdfPages, xlsxRows } from '../export-readers.js'
import { unzip } from '../unzip.js'

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex')

/** The files of a run, as the store keeps them. */
async function storedFiles (stored: StoredView, runId: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>()
  for (const name of await stored.list(runId)) files.set(name, await stored.read(runId, name))
  return files
}

const { app, runsDir, runs } = await workshopRuns(t)
const exportAll = await app.inject({ url: '/api/exports', headers: ADMIN })
const archive = await unzip(exportAll.rawPayload)

t.test('one ZIP with every run folder byte for byte, the tables, the gallery and the report', async (t) => {
  t.equal(exportAll.statusCode, 200)
  t.equal(exportAll.headers['content-type'], 'application/zip')
  t.match(exportAll.headers['content-disposition'], /^attachment; filename="runstore-export-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z\.zip"$/)
  const expected = new Set(['runs.csv', 'runs.xlsx', 'index.html', 'report.pdf'])
  for (const run of runs) {
    const asStored = await storedFiles(storedView(runsDir), run.run_id)
    t.same([...asStored.keys()].sort(), ['input_text.txt', 'metadata.json', ...(run.outputs), ...(asStored.has('transformed_text.txt') ? ['transformed_text.txt'] : [])].sort(), 'nothing else is stored for the run')
    for (const [name, bytes] of asStored) {
      expected.add(`runs/${run.run_id}/${name}`)
      t.ok(archive.get(`runs/${run.run_id}/${name}`)?.equals(bytes), `runs/${run.run_id}/${name} is the stored file`)
    }
  }
  t.same([...archive.keys()].sort(), [...expected].sort())
  t.same([...archive.keys()].slice(-4), ['runs.csv', 'runs.xlsx', 'index.html', 'report.pdf'], 'the views follow the folders')
})

t.test('runs.csv: UTF-8 with a byte order mark, one row per output, umlauts intact', async (t) => {
  const csv = archive.get('runs.csv')!
  t.same([...csv.subarray(0, 3)], [0xef, 0xbb, 0xbf], 'Excel reads it as UTF-8')
  t.match(csv.toString('utf8'), /\r\n/, 'CRLF line ends (RFC 4180)')
  const rows = csvRows(csv)
  t.equal(rows.length, runs.reduce((n, run) => n + Math.max(1, run.outputs.length), 0))
  for (const run of runs) {
    const own = rows.filter((row) => row.run_id === run.run_id)
    t.equal(own.length, Math.max(1, run.outputs.length), `${run.input_text}: its rows`)
    t.equal(own[0]!.input_text, run.input_text, 'text read back as written')
    t.equal(own[0]!.user_id, run.user_id ?? '')
    t.same(own.map((row) => row.path), run.outputs.length === 0 ? [''] : run.outputs.map((name) => `runs/${run.run_id}/${name}`))
    for (const row of own) {
      if (row.path === undefined || row.path === '') continue
      t.equal(row.sha256, sha256(archive.get(row.path)!), `${row.path}: sha256 of the file in the ZIP`)
      t.equal(Number(row.file_size_bytes), archive.get(row.path)!.length)
    }
  }
  const anna = rows.find((row) => row.input_text === 'Ein Haus aus Würfeln')!
  t.equal(anna.transformed_text, 'Grüße aus Köln: süße Äpfel, Öl und Straßenbahn')
  t.match(rows.filter((row) => row.run_id === anna.run_id).map((row) => [row.media_type, row.format, row.backend, row.config]), [['image', 'jpg', 'data', 'upload_test'], ['audio', 'mp3', 'data', 'upload_test']])

  const flower = rows.filter((row) => row.input_text!.startsWith('Eine Blume'))
  t.same(flower.map((row) => row.media_type), ['image', 'audio'])
  const metadata = JSON.parse(archive.get(`runs/${flower[0]!.run_id}/metadata.json`)!.toString())
  const translation = metadata.stages.find((s: { stage: string }) => s.stage === 'translation').output
  t.match(translation, /^A flower on the meadow, größer/, 'a translation the dictionary could not finish')
  t.equal(flower[0]!.translation_text, translation, 'every stage has a text column')
  t.equal(flower[0]!.safety_decision, 'allowed', 'and a decision column')
  t.equal(flower[0]!.generation_text, 'output_image.png')
  t.match(flower[0]!.seed, /^\d+$/, 'the seed the image was made with')
  t.equal(Number(flower[0]!.seed), metadata.seed)
  t.equal(flower[0]!.width, '64')
  t.equal(flower[1]!.duration_seconds, '1.5')

  const blocked = rows.find((row) => row.input_text === 'ein Messer')!
  t.equal(blocked.status, 'blocked')
  t.match(blocked.safety_decision, /^blocked: .+\[.+\]$/, 'the verdict with its reason and codes')
  t.equal(blocked.media_type, '', 'a run without outputs has one row without media facts')
  const failed = rows.find((row) => row.input_text === 'Ein Vogel im Regen')!
  t.match(failed, { status: 'failed', media_type: 'image', errors: /^BACKEND_FAILED: backend broken failed: out of memory$/ }, 'what went wrong, beside what was made')
})

t.test('runs.xlsx holds the same rows as runs.csv', async (t) => {
  const csv = csvCells(archive.get('runs.csv')!)
  const xlsx = await xlsxRows(archive.get('runs.xlsx')!)
  t.equal(xlsx.name, 'runs')
  t.same(xlsx.header, csv[0])
  t.same(xlsx.rows, csv.slice(1), 'every cell, umlauts and line breaks included')
})

t.test('report.pdf: one page per run with its texts and facts; what the font lacks becomes ?', async (t) => {
  const pdf = archive.get('report.pdf')!
  t.equal(pdf.subarray(0, 5).toString(), '%PDF-')
  const pages = await pdfPages(pdf)
  t.equal(pages.length, runs.length)
  // the pages in the order of the listing: newest first
  const ordered = [...runs].reverse()
  for (const [i, run] of ordered.entries()) {
    t.match(pages[i], run.run_id, `page ${i + 1} is run ${run.run_id}`)
    for (const name of run.outputs) t.match(pages[i], `runs/${run.run_id}/${name}`)
  }
  t.match(pages.find((p) => p.includes('Ein Haus aus Würfeln')), 'Grüße aus Köln: süße Äpfel, Öl und Straßenbahn')
  t.match(pages.find((p) => p.includes('Ein Vogel im Regen')), /Errors .*BACKEND_FAILED/)
  t.match(pages.find((p) => p.includes('auf der Straße')), '????? ? auf der Straße', 'Cyrillic and emoji replaced, not crashed on')
  const cube = runs.find((run) => run.outputs.includes('output_image.webp'))!
  t.match(pages.find((p) => p.includes(cube.run_id)), /image: not shown in a PDF .*webp/, 'a WebP picture: a placeholder with its facts')
})

t.test('filters select the runs, as in the listing', async (t) => {
  const res = await app.inject({ url: '/api/exports?user_id=J%C3%B6rg&schema=bauhaus', headers: ADMIN })
  t.equal(res.statusCode, 200)
  const entries = await unzip(res.rawPayload)
  const jörg = runs.filter((run) => run.user_id === 'Jörg' && run.schema === 'bauhaus')
  t.equal(jörg.length, 1)
  t.same(new Set([...entries.keys()].filter((name) => name.startsWith('runs/')).map((name) => name.split('/')[1])), new Set([jörg[0]!.run_id]))
  t.same(csvRows(entries.get('runs.csv')!).map((row) => row.run_id), jörg[0]!.outputs.map(() => jörg[0]!.run_id))
  t.equal((await pdfPages(entries.get('report.pdf')!)).length, 1)

  const none = await app.inject({ url: '/api/exports?user_id=nobody', headers: ADMIN })
  const empty = await unzip(none.rawPayload)
  t.same([...empty.keys()], ['runs.csv', 'runs.xlsx', 'index.html', 'report.pdf'])
  t.same(csvRows(empty.get('runs.csv')!), [])
  t.same(await pdfPages(empty.get('report.pdf')!), ['No runs match the filters.'])
})

t.test('formats= chooses what the ZIP holds', async (t) => {
  const csvOnly = await unzip((await app.inject({ url: '/api/exports?formats=csv', headers: ADMIN })).rawPayload)
  t.same([...csvOnly.keys()], ['runs.csv'])
  t.equal(csvRows(csvOnly.get('runs.csv')!).length, csvRows(archive.get('runs.csv')!).length)

  const tables = await unzip((await app.inject({ url: '/api/exports?formats=xlsx,csv', headers: ADMIN })).rawPayload)
  t.same([...tables.keys()], ['runs.csv', 'runs.xlsx'])

  const gallery = await unzip((await app.inject({ url: '/api/exports?formats=html', headers: ADMIN })).rawPayload)
  t.ok([...gallery.keys()].some((name) => name.startsWith('runs/')), 'the gallery brings the folders it shows')
  t.equal([...gallery.keys()].at(-1), 'index.html')

  for (const formats of ['csv,word', 'PDF', ',']) {
    const res = await app.inject({ url: `/api/exports?formats=${encodeURIComponent(formats)}`, headers: ADMIN })
    t.equal(res.statusCode, 400, formats)
    t.match(res.json(), { statusCode: 400, error: 'Bad Request', code: 'INVALID_EXPORT_FORMAT' })
  }
  // the index refuses it (a leap second), before any byte of the ZIP
  const badFilter = await app.inject({ url: '/api/exports?from=2025-11-04T23:59:60Z', headers: ADMIN })
  t.equal(badFilter.statusCode, 400)
  t.match(badFilter.json(), { code: 'INVALID_FILTER' })
  t.equal((await app.inject({ url: '/api/exports?media_type=smell', headers: ADMIN })).statusCode, 400, 'the listing\'s schema')
})

t.test('admins only: no token or a wrong one 401, no ADMIN_TOKEN configured 403', async (t) => {
  const anonymous = await app.inject({ url: '/api/exports' })
  t.equal(anonymous.statusCode, 401)
  t.match(anonymous.json(), { code: 'ADMIN_UNAUTHORIZED' })
  for (const authorization of [`Bearer ${ADMIN_TOKEN}x`, `Bearer ${ADMIN_TOKEN.slice(1)}`, ADMIN_TOKEN, `Basic ${ADMIN_TOKEN}`, 'Bearer ']) {
    const wrong = await app.inject({ url: '/api/exports?formats=nonsense', headers: { authorization } })
    t.equal(wrong.statusCode, 401, `${authorization}: refused before the query is looked at`)
  }
  const off = await build(t, { RUNS_DIR: await tempRunsDir(t) })
  const disabled = await off.inject({ url: '/api/exports', headers: ADMIN })
  t.equal(disabled.statusCode, 403)
  t.match(disabled.json(), { code: 'ADMIN_DISABLED' })
})

/** GET over a real socket: the status, the bytes that arrived, and whether the transfer completed. */
async function download (url: string): Promise<{ status: number, body: Buffer, complete: boolean }> {
  return await new Promise((resolve, reject) => {
    get(url, { headers: ADMIN }, (response: IncomingMessage) => {
      const chunks: Buffer[] = []
      let complete = false
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () => { complete = true })
      response.on('error', () => {})
      response.on('close', () => { resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks), complete: complete && response.complete }) })
    }).on('error', reject)
  })
}

t.test('a file that cannot be read breaks the transfer off: never a ZIP that looks whole', async (t) => {
  const { app, runsDir, runs } = await workshopRuns(t)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const whole = await download(`${base}/api/exports?formats=folders`)
  t.ok(whole.complete)
  t.equal((await unzip(whole.body)).size > 0, true)

  const withMedia = runs.filter((run) => run.outputs.length > 0)
  const missing = withMedia[1]!
  const stored = storedView(runsDir)
  await stored.remove(missing.run_id, missing.outputs[0]!)
  const gone = await download(`${base}/api/exports`)
  t.equal(gone.status, 200, 'the answer had begun')
  t.notOk(gone.complete, 'a missing file: the transfer breaks off')
  await t.rejects(unzip(gone.body), 'and what arrived is no ZIP')

  const cut: MadeRun = withMedia[2]!
  await stored.write(cut.run_id, cut.outputs[0]!, (await stored.read(cut.run_id, cut.outputs[0]!)).subarray(0, 10))
  const short = await download(`${base}/api/exports?user_id=${encodeURIComponent(cut.user_id!)}&schema=${cut.schema}`)
  t.notOk(short.complete, 'a file shorter than its metadata says: the same')
  await t.rejects(unzip(short.body))

  t.equal((await app.inject({ url: '/health' })).statusCode, 200, 'the service goes on')
})
