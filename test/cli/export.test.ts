import t, { type Test } from 'tap'
import Database from 'better-sqlite3'
import { createHash } from 'node:crypto'
import { readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { cli } from './run-cli.js'
import { createRunstore, type Runstore } from '../../runstore.js'
import { fixtures } from '../fixtures/media.js'
import { tempRunsDir, testConfig } from '../helper.js'
import { csvRows } from '../export-readers.js'
import { unzip } from '../unzip.js'

/** A running store (the server's services, its index open and in use) with runs of two users. */
async function serving (t: Test): Promise<{ runstore: Runstore, runsDir: string, out: string, lab: string[], anna: string }> {
  const runsDir = await tempRunsDir(t)
  const runstore = await createRunstore(testConfig(runsDir))
  t.teardown(async () => { await runstore.close() })
  await runstore.startup
  const lab: string[] = []
  for (const [i, file] of [fixtures.png.file, fixtures.mp3.file].entries()) {
    const run = await runstore.storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: `Blume ${i} für Jürgen`, user_id: 'lab', status: 'running' })
    await runstore.storage.addMedia(run.run_id, { kind: 'file', path: file }, { config: 'upload', backend: 'upload' })
    await runstore.storage.setStatus(run.run_id, 'completed')
    lab.push(run.run_id)
  }
  const anna = (await runstore.storage.createRun({ schema: 'bauhaus', execution_mode: 'eco', input_text: 'Haus', user_id: 'anna' })).run_id
  return { runstore, runsDir, out: join(runsDir, '..', `${runsDir.split('/').pop()!}-export.zip`), lab, anna }
}

/** The meta rows of the index file, read past any process that has it open. */
function indexMeta (runsDir: string): unknown {
  const db = new Database(join(runsDir, '.index.sqlite'), { readonly: true })
  try { return db.prepare('SELECT key, value FROM meta ORDER BY key').all() } finally { db.close() }
}

t.test('export: the selected runs\' files byte-identical to the store, the same ZIP as GET /api/exports; the service\'s index is left as it was', async (t) => {
  const { runstore, runsDir, out, lab, anna } = await serving(t)
  t.teardown(async () => { await rm(out, { force: true }) })
  const meta = indexMeta(runsDir)
  t.match(meta, [{ key: 'built', value: '1' }, { key: 'clean_stop', value: '0' }])

  const result = await cli(['--runs-dir', runsDir, 'export', '--out', out, '--user', 'lab', '--formats', 'csv,folders'])
  t.equal(result.code, 0, result.stderr)
  t.match(result.stdout, new RegExp(`^2 runs exported to ${out} \\(\\d+ bytes, sha256 [0-9a-f]{64}\\)\\n$`))
  t.match(result.stderr, /^export: 1\/2 runs\nexport: 2\/2 runs\n$/, 'plain progress lines when stderr is no terminal')
  const entries = await unzip(await readFile(out))
  const expected = new Map<string, Buffer>()
  for (const runId of [...lab].reverse()) {
    for (const name of await readdir(join(runsDir, runId))) expected.set(`runs/${runId}/${name}`, await readFile(join(runsDir, runId, name)))
  }
  t.same([...entries.keys()].filter((name) => name.startsWith('runs/')).sort(), [...expected.keys()].sort(), 'every file of the selected runs, no other run')
  for (const [name, bytes] of expected) t.ok(entries.get(name)!.equals(bytes), `${name} byte-identical`)
  t.notOk([...entries.keys()].some((name) => name.includes(anna)))
  t.same(csvRows(entries.get('runs.csv')!).map((row) => row.input_text), ['Blume 1 für Jürgen', 'Blume 0 für Jürgen'])

  // The route's ZIP for the same query holds the same entries with the same bytes.
  const { stream } = await runstore.exporter.export({ filters: { user_id: 'lab' }, formats: ['folders', 'csv'] })
  const overHttp = await unzip(Buffer.concat(await stream.toArray()))
  t.same([...entries.keys()], [...overHttp.keys()])
  for (const [name, bytes] of overHttp) t.ok(entries.get(name)!.equals(bytes), `${name} as GET /api/exports has it`)

  t.equal((await cli(['--runs-dir', runsDir, 'stats', '--json'])).code, 0)
  t.equal((await cli(['--runs-dir', runsDir, 'verify', '--json'])).code, 0)
  t.same(indexMeta(runsDir), meta, 'export, stats and verify left the index\'s meta as the service wrote it: still in use, no clean stop')
  await runstore.storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'the service goes on writing' })
  await runstore.close()
  t.match(indexMeta(runsDir), [{ key: 'built', value: '1' }, { key: 'clean_stop', value: '1' }], 'its own close marks the clean stop')
})

t.test('export --json summarises; a bar on a terminal; every format by default', async (t) => {
  const { runsDir, out } = await serving(t)
  t.teardown(async () => { await rm(out, { force: true }) })
  const result = await cli(['--runs-dir', runsDir, 'export', '--out', out, '--json', '--schema', 'dada', '--from', '2020-01-01', '--q', 'blume'], {}, { tty: true })
  t.equal(result.code, 0, result.stderr)
  const zip = await readFile(out)
  const summary = JSON.parse(result.stdout)
  t.same(summary, {
    file: out,
    runs: 2,
    bytes: zip.length,
    sha256: createHash('sha256').update(zip).digest('hex'),
    formats: ['folders', 'csv', 'xlsx', 'html', 'pdf'],
    filters: { schema: 'dada', from: '2020-01-01', q: 'blume' }
  })
  t.match(result.stderr, /\rexport \[#+\] 2\/2\n$/)
  t.same([...(await unzip(zip)).keys()].filter((name) => !name.startsWith('runs/')), ['runs.csv', 'runs.xlsx', 'index.html', 'report.pdf'])
})

t.test('export refuses what the route refuses, and a failed export leaves no file', async (t) => {
  const { runsDir, out, lab } = await serving(t)
  const badStatus = await cli(['--runs-dir', runsDir, 'export', '--out', out, '--status', 'finished'])
  t.equal(badStatus.code, 2)
  t.match(badStatus.stderr, /^runstore: invalid filter: status: /)
  const badDate = await cli(['--runs-dir', runsDir, 'export', '--out', out, '--from', 'yesterday'])
  t.match([badDate.code, badDate.stderr], [2, /invalid filter: from/])
  const badFormat = await cli(['--runs-dir', runsDir, 'export', '--out', out, '--formats', 'csv,docx'])
  t.match([badFormat.code, badFormat.stderr], [2, /formats: unknown "docx"/])
  const noOut = await cli(['--runs-dir', runsDir, 'export'])
  t.match([noOut.code, noOut.stderr], [1, /required option '--out <file>'/])

  // a stored image cut short: the export breaks off midway
  const metadata = JSON.parse(await readFile(join(runsDir, lab[0]!, 'metadata.json'), 'utf8'))
  await truncate(join(runsDir, lab[0]!, metadata.outputs[0].filename), 10)
  const broken = await cli(['--runs-dir', runsDir, 'export', '--out', out])
  t.equal(broken.code, 2)
  t.match(broken.stderr, /\nrunstore: the export failed, no file was written: file data stream has unexpected number of bytes\n$/)
  const left = (await readdir(join(runsDir, '..'))).filter((name) => name.includes(`${runsDir.split('/').pop()!}-export`))
  t.same(left, [], 'neither the file nor its temporary name')
  const nothing = await cli(['--runs-dir', join(runsDir, 'nope'), 'export', '--out', out])
  t.match([nothing.code, nothing.stderr], [2, /no store at/])
})

t.test('export without a usable index reads the run folders instead, and says so', async (t) => {
  const { runstore, runsDir, out, anna } = await serving(t)
  t.teardown(async () => { await rm(out, { force: true }) })
  await runstore.close()
  await writeFile(join(runsDir, '.index.sqlite'), 'garbage, not a database '.repeat(200))
  const result = await cli(['--runs-dir', runsDir, 'export', '--out', out, '--user', 'anna', '--formats', 'folders', '--json'])
  t.equal(result.code, 0, result.stderr)
  t.match(result.stderr, `runstore: the index file is damaged (${join(runsDir, '.index.sqlite')}); the runs are read from their folders instead\n`)
  t.match(result.stderr, /index: 3\/3 runs/)
  t.same([...(await unzip(await readFile(out))).keys()].map((name) => name.split('/')[1]), [anna, anna], 'metadata.json and input_text.txt of the one run selected')
  t.equal(await readFile(join(runsDir, '.index.sqlite'), 'utf8'), 'garbage, not a database '.repeat(200), 'the file is left to the service')
})

t.test('--help for export names the filters of GET /api/exports', async (t) => {
  const help = await cli(['export', '--help'])
  t.equal(help.code, 0)
  for (const flag of ['--out', '--formats', '--user', '--schema', '--backend', '--media-type', '--status', '--from', '--to', '--q', '--json']) t.match(help.stdout, flag)
  t.match((await cli(['--help'])).stdout, /export/)
})
