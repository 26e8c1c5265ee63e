import t from 'tap'
import { createHash } from 'node:crypto'
import { mkdir, readdir, readFile, rename } from 'node:fs/promises'
import { join } from 'node:path'
import { fixtures } from '../fixtures/media.js'
import { build, crashIndex, onlyLocal, storedView, tempRunsDir } from '../helper.js'
import type { StoredView } from '../stored-view.js'

type App = Awaited<ReturnType<typeof build>>

const ADMIN_TOKEN = 'a-long-admin-token-for-tests'
const admin = { authorization: `Bearer ${ADMIN_TOKEN}` }
const DAY_MS = 24 * 60 * 60 * 1000
const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex')

async function runWithMedia (app: App, inputText: string = 'Eine Blume auf der Wiese'): Promise<string> {
  const run = (await app.inject({ method: 'POST', url: '/api/runs', payload: { schema: 'dada', execution_mode: 'eco', input_text: inputText, user_id: 'DOE_J' } })).json()
  t.equal((await app.inject({ method: 'PATCH', url: `/api/runs/${run.run_id}`, payload: { transformed_text: 'A flower' } })).statusCode, 200)
  for (const file of [fixtures.png.file, fixtures.wav.file]) {
    const res = await app.inject({ method: 'POST', url: `/api/runs/${run.run_id}/media`, payload: { source: 'data', data: (await readFile(file)).toString('base64'), config: 'test' } })
    t.equal(res.statusCode, 201)
  }
  return run.run_id
}

/** Every stored file of a run, or of the whole store, by name, with its sha256. */
async function storedHashes (stored: StoredView, runId?: string): Promise<Record<string, string>> {
  const hashes: Record<string, string> = {}
  const paths = runId === undefined ? await stored.files() : (await stored.list(runId)).map((name) => `${runId}/${name}`)
  for (const path of paths) {
    const slash = path.lastIndexOf('/')
    hashes[runId === undefined ? path : path.slice(slash + 1)] = sha256(await stored.read(path.slice(0, slash), path.slice(slash + 1)))
  }
  return hashes
}

const listed = async (app: App): Promise<any[]> => (await app.inject({ url: '/api/runs' })).json().runs
const listedIds = async (app: App): Promise<string[]> => (await listed(app)).map((r) => r.run_id)
const trashed = async (app: App): Promise<any> => {
  const res = await app.inject({ url: '/api/trash', headers: admin })
  t.equal(res.statusCode, 200)
  return res.json()
}
const del = async (app: App, runId: string) => await app.inject({ method: 'DELETE', url: `/api/runs/${runId}`, headers: admin })
const restore = async (app: App, runId: string, headers: Record<string, string> = admin) => await app.inject({ method: 'POST', url: `/api/trash/${runId}/restore`, headers })
const storedRuns = async (stored: StoredView): Promise<string[]> => (await stored.entries()).filter((name) => /^[0-9a-f-]{36}$/.test(name))

t.test('DELETE moves a run to the trash; restoring brings it back byte for byte, listed and served again', async (t) => {
  const runsDir = await tempRunsDir(t)
  const app = await build(t, { RUNS_DIR: runsDir, ADMIN_TOKEN })
  const stored = storedView(runsDir)
  const kept = await runWithMedia(app, 'Ein Haus')
  const runId = await runWithMedia(app)
  const image = (await app.inject({ url: `/api/media/image/${runId}` })).rawPayload
  const before = await storedHashes(stored, runId)
  const metadata = (await app.inject({ url: `/api/runs/${runId}` })).json()
  const summary = (await listed(app)).find((r) => r.run_id === runId)
  t.same(Object.keys(before).sort(), ['input_text.txt', 'metadata.json', 'output_audio.wav', 'output_image.png', 'transformed_text.txt'])

  const deletedFrom = Date.now()
  t.equal((await del(app, runId)).statusCode, 204)
  t.same(await listedIds(app), [kept], 'the listing drops it at once')
  t.same(await storedRuns(stored), [kept], 'its files are out of the runs')
  t.equal((await app.inject({ url: `/api/runs/${runId}` })).statusCode, 404)
  t.equal((await app.inject({ url: `/api/media/image/${runId}` })).statusCode, 404, 'nor served from memory')
  const trash = await trashed(app)
  t.equal(trash.trash_days, 30)
  t.match(trash.runs, [{ run_id: runId, schema: 'dada', user_id: 'DOE_J', input_text: 'Eine Blume auf der Wiese' }])
  t.equal(trash.runs.length, 1)
  t.ok(Date.parse(trash.runs[0].deleted_at) >= deletedFrom && Date.parse(trash.runs[0].deleted_at) <= Date.now(), 'deleted_at is the time of the DELETE')

  const restored = await restore(app, runId)
  t.equal(restored.statusCode, 200)
  t.same(restored.json(), metadata, 'the answer is its metadata, unchanged')
  t.same(await storedHashes(stored, runId), before, 'every file back, the same names and sha256, nothing added')
  t.same(await listedIds(app), [runId, kept], 'listed again')
  t.same((await listed(app)).find((r) => r.run_id === runId), summary, 'with the fields it had')
  t.same((await app.inject({ url: `/api/media/image/${runId}` })).rawPayload, image, 'and served')
  t.same((await trashed(app)).runs, [])
  const again = await restore(app, runId)
  t.equal(again.statusCode, 404)
  t.match(again.json(), { statusCode: 404, error: 'Not Found', code: 'TRASHED_RUN_NOT_FOUND' })

  await app.close()
  const restarted = await build(t, { RUNS_DIR: runsDir, ADMIN_TOKEN })
  t.same(await listedIds(restarted), [runId, kept], 'and after a restart')
})

t.test('the trash is for admins only', async (t) => {
  const app = await build(t, { ADMIN_TOKEN })
  const runId = await runWithMedia(app)
  t.equal((await del(app, runId)).statusCode, 204)
  for (const [what, headers] of [['no token', {}], ['a wrong token', { authorization: 'Bearer not-the-admin-token' }]] as const) {
    const list = await app.inject({ url: '/api/trash', headers })
    t.equal(list.statusCode, 401, `GET /api/trash with ${what}`)
    t.match(list.json(), { code: 'ADMIN_UNAUTHORIZED' })
    const res = await restore(app, runId, headers)
    t.equal(res.statusCode, 401, `restore with ${what}`)
    t.match(res.json(), { code: 'ADMIN_UNAUTHORIZED' })
  }
  t.equal((await restore(app, 'not-a-run-id')).statusCode, 400)
  t.same(await listedIds(app), [], 'nothing restored')

  const off = await build(t)
  t.match((await off.inject({ url: '/api/trash' })).json(), { statusCode: 403, code: 'ADMIN_DISABLED' })
  t.match((await restore(off, runId)).json(), { statusCode: 403, code: 'ADMIN_DISABLED' })
})

t.test('a run is never restored over a run of the same id: 409, and both stay', async (t) => {
  const runsDir = await tempRunsDir(t)
  const app = await build(t, { RUNS_DIR: runsDir, ADMIN_TOKEN })
  const stored = storedView(runsDir)
  const runId = await runWithMedia(app)
  t.equal((await del(app, runId)).statusCode, 204)
  const [entry] = await stored.trash()
  // someone copies the run back by hand, and changes it
  for (const name of await stored.list(`.trash/${entry!}`)) await stored.write(runId, name, await stored.read(`.trash/${entry!}`, name))
  await stored.write(runId, 'input_text.txt', 'changed by hand')
  const res = await restore(app, runId)
  t.equal(res.statusCode, 409)
  t.match(res.json(), { statusCode: 409, error: 'Conflict', code: 'RUN_EXISTS' })
  t.equal((await stored.read(runId, 'input_text.txt')).toString(), 'changed by hand', 'the live run is untouched')
  t.match((await trashed(app)).runs, [{ run_id: runId }], 'the trashed one is still there')
})

t.test('emptying the trash: a dry run changes nothing; runs deleted TRASH_DAYS ago go for good, later ones stay', async (t) => {
  const runsDir = await tempRunsDir(t)
  const app = await build(t, { RUNS_DIR: runsDir, ADMIN_TOKEN })
  const stored = storedView(runsDir)
  const { storage, blobs, trash } = app.runstore
  const old = await runWithMedia(app, 'alt')
  const recent = await runWithMedia(app, 'neu')
  const longAgo = new Date(Date.now() - 40 * DAY_MS)
  // deleted 40 days ago: through the run records, as DELETE does, at another time
  await storage.deleteRun(old, async (id) => await blobs.trashRun(id, longAgo))
  t.equal((await del(app, recent)).statusCode, 204)
  const files = await storedHashes(stored)

  const dry = await trash.emptyTrash({ dryRun: true })
  t.same(dry, { dry_run: true, older_than_days: 30, removed: [{ run_id: old, deleted_at: longAgo.toISOString() }], kept: 1 })
  t.same(await storedHashes(stored), files, 'a dry run changes no file')
  t.same((await trashed(app)).runs.map((r: any) => r.run_id), [recent, old])

  t.same(await trash.emptyTrash({ olderThanDays: 50 }), { dry_run: false, older_than_days: 50, removed: [], kept: 2 })
  const emptied = await trash.emptyTrash()
  t.same(emptied, { dry_run: false, older_than_days: 30, removed: [{ run_id: old, deleted_at: longAgo.toISOString() }], kept: 1 })
  t.same((await trashed(app)).runs.map((r: any) => r.run_id), [recent])
  t.match((await restore(app, old)).json(), { statusCode: 404, code: 'TRASHED_RUN_NOT_FOUND' }, 'gone for good')
  t.same((await stored.entries()).filter((name) => name.startsWith('.tmp-')), [], 'nothing left behind')

  const later = await trash.emptyTrash({ now: new Date(Date.now() + 31 * DAY_MS) })
  t.same(later.removed.map((r) => r.run_id), [recent])
  t.same(await stored.trash(), [])
})

t.test('a crash in the middle of deleting, restoring or emptying is recovered at the next start', async (t) => {
  if (!onlyLocal(t, 'the crash is made of the local driver\'s folder renames; the S3 driver\'s leftovers (a trash copy cut off) are swept in test/services/storage/blob/s3.test.ts')) return
  const runsDir = await tempRunsDir(t)
  const first = await build(t, { RUNS_DIR: runsDir, ADMIN_TOKEN })
  const moved = await runWithMedia(first, 'gelöscht')
  const back = await runWithMedia(first, 'zurück')
  const kept = await runWithMedia(first, 'bleibt')
  const removing = await runWithMedia(first, 'weg')
  t.equal((await del(first, back)).statusCode, 204)
  t.equal((await del(first, removing)).statusCode, 204)
  const stored = storedView(runsDir)
  const movedFiles = await storedHashes(stored, moved)
  // The process dies (`first` is never closed, as a killed one is not): what each rename did stands,
  // the index and the events never heard of it.
  const entries = await readdir(join(runsDir, '.trash'))
  // a DELETE that renamed the folder into the trash and got no further
  await rename(join(runsDir, moved), join(runsDir, '.trash', `${moved}@20261203T101500123Z`))
  // a restore that renamed the folder back and got no further
  await rename(join(runsDir, '.trash', entries.find((e) => e.startsWith(back))!), join(runsDir, back))
  // emptying the trash, cut off while removing a run it had renamed away
  await rename(join(runsDir, '.trash', entries.find((e) => e.startsWith(removing))!), join(runsDir, '.tmp-0123456789abcdef'))
  await mkdir(join(runsDir, '.tmp-fedcba9876543210', 'half'), { recursive: true })

  await crashIndex(runsDir)
  const second = await build(t, { RUNS_DIR: runsDir, ADMIN_TOKEN })
  t.same(await listedIds(second), [kept, back], 'exactly the runs on disk are listed: none half-deleted')
  t.same((await trashed(second)).runs.map((r: any) => [r.run_id, r.deleted_at]), [[moved, '2026-12-03T10:15:00.123Z']])
  t.same((await readdir(runsDir)).filter((name) => name.startsWith('.tmp-')), [], 'what emptying left half-removed is swept')
  t.equal((await restore(second, moved)).statusCode, 200)
  t.same(await storedHashes(stored, moved), movedFiles, 'and the run cut off in the middle of its delete is whole')
  t.same(await listedIds(second), [kept, back, moved])
})

t.test('TRASH_DAYS=0: DELETE removes the run at once', async (t) => {
  const runsDir = await tempRunsDir(t)
  const app = await build(t, { RUNS_DIR: runsDir, ADMIN_TOKEN, TRASH_DAYS: '0' })
  const runId = await runWithMedia(app)
  t.equal((await del(app, runId)).statusCode, 204)
  t.same(await storedView(runsDir).entries(), [], 'no run, no trash')
  t.same(await trashed(app), { trash_days: 0, runs: [] })
  t.match((await restore(app, runId)).json(), { statusCode: 404, code: 'TRASHED_RUN_NOT_FOUND' })
})

t.test('a trashed run whose metadata.json cannot be read is listed with what is known', async (t) => {
  const runsDir = await tempRunsDir(t)
  const app = await build(t, { RUNS_DIR: runsDir, ADMIN_TOKEN })
  const stored = storedView(runsDir)
  const damaged = await runWithMedia(app)
  const empty = await runWithMedia(app)
  t.equal((await del(app, damaged)).statusCode, 204)
  t.equal((await del(app, empty)).statusCode, 204)
  for (const entry of await stored.trash()) {
    await stored.write(`.trash/${entry}`, 'metadata.json', entry.startsWith(damaged) ? '{ half a docu' : 'null')
  }
  t.match((await trashed(app)).runs, [
    { run_id: empty, deleted_at: String, schema: null, user_id: null, input_text: null },
    { run_id: damaged, deleted_at: String, schema: null, user_id: null, input_text: null }
  ])
})

t.test('the trash routes are in the OpenAPI document, for admins', async (t) => {
  const app = await build(t)
  const doc = (await app.inject({ url: '/openapi.json' })).json()
  t.same(doc.paths['/api/trash'].get.security, [{ adminToken: [] }])
  t.same(Object.keys(doc.paths['/api/trash'].get.responses['200'].content['application/json'].schema.properties.runs.items.properties).sort(), ['deleted_at', 'input_text', 'run_id', 'schema', 'user_id'])
  const restoreOp = doc.paths['/api/trash/{run_id}/restore'].post
  t.same(restoreOp.security, [{ adminToken: [] }])
  t.same(Object.keys(restoreOp.responses).sort(), ['200', '400', '401', '403', '404', '409', '503', '507'])
  t.match(doc.paths['/api/runs/{run_id}'].delete.summary, /trash/)
})
