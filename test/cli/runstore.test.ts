import t, { type Test } from 'tap'
import { appendFile, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { cli } from './run-cli.js'
import { createRunstore } from '../../runstore.js'
import { fixtures } from '../fixtures/media.js'
import { tempRunsDir, testConfig } from '../helper.js'

/** Three runs with an image each, made by the service's own storage. */
async function store (t: Test): Promise<{ runsDir: string, runs: Array<{ run_id: string, filename: string }> }> {
  const runsDir = await tempRunsDir(t)
  const runstore = await createRunstore(testConfig(runsDir))
  const png = await readFile(fixtures.png.file)
  const runs = []
  for (const [i, schema] of ['dada', 'dada', 'bauhaus'].entries()) {
    const run = await runstore.storage.createRun({ schema, execution_mode: 'eco', input_text: `Blume ${i}`, status: 'running' })
    const output = await runstore.storage.addMedia(run.run_id, png, { config: 'upload', backend: i === 2 ? 'builtin' : 'upload' })
    await runstore.storage.setStatus(run.run_id, 'completed')
    runs.push({ run_id: run.run_id, filename: output.filename })
  }
  await runstore.close()
  return { runsDir, runs }
}

t.test('verify passes a whole store and names a flipped byte, a missing file and an unlisted file', async (t) => {
  const { runsDir, runs } = await store(t)
  const clean = await cli(['--runs-dir', runsDir, 'verify'])
  t.equal(clean.code, 0, clean.stdout)
  t.match(clean.stdout, /^3 runs, 9 files, \d+ bytes checked; 0 problems\n$/)
  t.match(clean.stderr, /verify: 3\/3 runs/, 'plain progress lines when stderr is no terminal')

  const [flipped, missing, extra] = runs as [typeof runs[0], typeof runs[0], typeof runs[0]]
  const image = join(runsDir, flipped.run_id, flipped.filename)
  const bytes = await readFile(image)
  bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 0x01
  await writeFile(image, bytes)
  await rm(join(runsDir, missing.run_id, missing.filename))
  await writeFile(join(runsDir, extra.run_id, 'notes.txt'), 'copied in by hand')

  const broken = await cli(['--runs-dir', runsDir, 'verify'])
  t.equal(broken.code, 1)
  t.match(broken.stdout, `${flipped.run_id}/${flipped.filename}: sha256:`)
  t.match(broken.stdout, `${missing.run_id}/${missing.filename}: missing:`)
  t.match(broken.stdout, `${extra.run_id}/notes.txt: unlisted:`)
  t.match(broken.stdout, /; 3 problems\n$/)

  const json = await cli(['--runs-dir', runsDir, 'verify', '--json'])
  t.equal(json.code, 1)
  t.same(JSON.parse(json.stdout).problems.map((p: { kind: string }) => p.kind).sort(), ['missing', 'sha256', 'unlisted'])
})

t.test('verify names a metadata.json that is not JSON or not a run document, and a size that differs', async (t) => {
  const { runsDir, runs } = await store(t)
  const [notJson, invalid, resized] = runs as [typeof runs[0], typeof runs[0], typeof runs[0]]
  await writeFile(join(runsDir, notJson.run_id, 'metadata.json'), '{"run_id": ')
  const document = JSON.parse(await readFile(join(runsDir, invalid.run_id, 'metadata.json'), 'utf8'))
  document.outputs[0].sha256 = 'not a hash'
  await writeFile(join(runsDir, invalid.run_id, 'metadata.json'), JSON.stringify(document))
  await appendFile(join(runsDir, resized.run_id, resized.filename), 'x')

  const { code, stdout } = await cli(['--runs-dir', runsDir, 'verify', '--json'])
  t.equal(code, 1)
  t.match(JSON.parse(stdout).problems, [
    { run_id: resized.run_id, file: resized.filename, kind: 'size' },
    { run_id: invalid.run_id, file: 'metadata.json', kind: 'metadata-invalid', message: /sha256/ },
    { run_id: notJson.run_id, file: 'metadata.json', kind: 'metadata-unreadable', message: /not JSON/ }
  ].sort((a, b) => runs.findIndex((r) => r.run_id === b.run_id) - runs.findIndex((r) => r.run_id === a.run_id)))
})

t.test('stats counts runs by month, status and pipeline, outputs by backend, and their bytes', async (t) => {
  const { runsDir } = await store(t)
  const month = new Date().toISOString().slice(0, 7)
  const { code, stdout } = await cli(['--runs-dir', runsDir, 'stats', '--json'])
  t.equal(code, 0)
  const stats = JSON.parse(stdout)
  t.match(stats, { runs: 3, outputs: 3, by_month: { [month]: 3 }, by_status: { completed: 3 }, by_pipeline: { dada: 2, bauhaus: 1 }, by_backend: { upload: 2, builtin: 1 }, unreadable: 0 })
  t.ok(stats.bytes > 3 * (await readFile(fixtures.png.file)).length)

  const text = await cli(['--runs-dir', runsDir, 'stats'], {}, { tty: true })
  t.match(text.stdout, /^3 runs, 3 outputs, \d+ bytes\n/)
  t.match(text.stdout, /by pipeline:\n {2}bauhaus +1\n {2}dada +2\n/)
  t.match(text.stderr, /\rstats \[#+\] 3\/3\n$/, 'a bar on a terminal')
})

t.test('--help for every command; an unknown command exits non-zero', async (t) => {
  const help = await cli(['--help'])
  t.equal(help.code, 0)
  t.match(help.stdout, /verify/)
  t.match(help.stdout, /stats/)
  t.match((await cli(['verify', '--help'])).stdout, /--json/)
  const unknown = await cli(['frobnicate'])
  t.equal(unknown.code, 1)
  t.match(unknown.stderr, /unknown command/)
  const nowhere = await cli(['--runs-dir', '/nonexistent/runs', 'verify'])
  t.same([nowhere.code, nowhere.stderr], [2, 'runstore: no store at /nonexistent/runs\n'], 'one line, no stack')
})

t.test('reindex builds the index again from the run folders: changes made by hand are listed, unreadable runs named', async (t) => {
  const { runsDir, runs } = await store(t)
  const path = join(runsDir, runs[0]!.run_id, 'metadata.json')
  const edited = JSON.parse(await readFile(path, 'utf8'))
  await writeFile(path, JSON.stringify({ ...edited, status: 'failed', user_id: 'BY_HAND' }, null, 2))
  const reindexed = await cli(['--runs-dir', runsDir, 'reindex'], {}, { tty: true })
  t.equal(reindexed.code, 0, reindexed.stderr)
  t.match(reindexed.stdout, `3 runs indexed into ${join(runsDir, '.index.sqlite')}; 0 skipped`)
  t.match(reindexed.stderr, /reindex \[#+\] 3\/3/, 'a bar on a terminal')
  const runstore = await createRunstore(testConfig(runsDir))
  t.teardown(async () => { await runstore.close() })
  await runstore.startup
  t.same((await runstore.index.list({ user_id: 'BY_HAND', status: 'failed' })).runs.map((r) => r.run_id), [runs[0]!.run_id])
  await runstore.close()

  await writeFile(join(runsDir, runs[1]!.run_id, 'metadata.json'), '{ not json')
  const partly = await cli(['--runs-dir', runsDir, 'reindex', '--json'])
  t.equal(partly.code, 1)
  const report = JSON.parse(partly.stdout)
  t.equal(report.runs, 2)
  t.same(report.skipped.map((s: { run_id: string }) => s.run_id), [runs[1]!.run_id])
})
