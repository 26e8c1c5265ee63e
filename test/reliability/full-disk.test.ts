import t, { type Test } from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { createHash, randomBytes } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { PNG } from 'pngjs'
import { startMediaServer, serveBytes } from '../fakes/media-server.js'
import { mediaFixtures } from '../fixtures/media.js'
import { build, multipartBody, tempRunsDir } from '../helper.js'
import { parseSse } from '../pipeline-setup.js'
import { mountSmallDisk, smallDiskProblem } from './small-disk.js'
import { listedRuns, runFolders, snapshot, storeProblems } from './store-check.js'

// A real full disk: a small tmpfs as RUNS_DIR (or as the index's disk), filled
// with a filler file. Every write path must refuse with 507 and a plain
// message, leave nothing behind, keep reads working, and work again once the
// filler is gone. Mounting needs root or CAP_SYS_ADMIN; elsewhere this skips.
const skip = (await smallDiskProblem()) ?? false

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex')
const smallImage = await readFile(mediaFixtures.png.file)
const NEW_RUN = { schema: 'dada', execution_mode: 'eco', input_text: 'Eine Blume auf der Wiese' }
// dada in eco mode makes a 1024×1024 builtin picture, about 1.5 MB.
const EXECUTE = { schema: 'dada', input_text: 'Eine Blume auf der Wiese', seed: 7 }

/** A PNG of random pixels: it does not compress, so its size on disk is about `side`² × 4 bytes. */
function noisyPng (side: number): Buffer {
  const png = new PNG({ width: side, height: side })
  randomBytes(png.data.length).copy(png.data)
  return PNG.sync.write(png)
}

type Write = readonly [what: string, okStatus: number, send: () => Promise<LightMyRequestResponse>]

/** Every way a client writes: a run, a change, media by form, data URI and URL, a pipeline run. */
function writePaths (app: FastifyInstance, runId: string, image: Buffer, imageUrl: string): Write[] {
  const media = `/api/runs/${runId}/media`
  const form = (): ReturnType<typeof multipartBody> => multipartBody([
    { name: 'config', value: 'upload' },
    { name: 'file', value: image, filename: 'flower.png', contentType: 'image/png' }
  ])
  return [
    ['POST /api/runs', 201, async () => await app.inject({ method: 'POST', url: '/api/runs', payload: NEW_RUN })],
    ['PATCH /api/runs/:run_id', 200, async () => await app.inject({ method: 'PATCH', url: `/api/runs/${runId}`, payload: { transformed_text: 'A flower in a meadow', status: 'running' } })],
    ['multipart upload', 201, async () => {
      const { body, contentType } = form()
      return await app.inject({ method: 'POST', url: media, payload: body, headers: { 'content-type': contentType } })
    }],
    ['data URI upload', 201, async () => await app.inject({ method: 'POST', url: media, payload: { source: 'data', data: `data:image/png;base64,${image.toString('base64')}`, config: 'upload' } })],
    ['URL download', 201, async () => await app.inject({ method: 'POST', url: media, payload: { source: 'url', url: imageUrl, config: 'upload' } })],
    ['pipeline execute', 200, async () => await app.inject({ method: 'POST', url: '/api/schema/pipeline/execute', payload: EXECUTE })]
  ]
}

/** The refusal a client sees: status, code, and a message that tells nothing of the server's insides. */
function assertRefused (t: Test, res: LightMyRequestResponse, statusCode: number, code: string, what: string, disk: string): void {
  t.equal(res.statusCode, statusCode, `${what}: ${statusCode}`)
  const body = res.json()
  t.match(body, { statusCode, code, error: String, message: String }, `${what}: ${code}`)
  t.notMatch(body.message, /ENOSPC|EROFS|EIO|no space left|read-only file system|\.tmp-|\//i, `${what}: no errno, no path in "${body.message}"`)
  t.notOk(res.body.includes(disk), `${what}: the disk's path is not in the answer`)
}

async function startImageHost (t: Test, bytes: Buffer): Promise<string> {
  const host = await startMediaServer({ '/image.png': serveBytes(bytes, 'image/png') })
  t.teardown(host.close)
  return `${host.url}/image.png`
}

async function assertStoreWhole (t: Test, app: FastifyInstance, runsDir: string): Promise<void> {
  t.same(await storeProblems(runsDir), [], 'every metadata.json parses, every listed file is whole, no temporary file')
  t.same(await listedRuns(app), await runFolders(runsDir), 'the index lists exactly the run folders')
}

t.test('a full RUNS_DIR: every write answers 507, nothing is half-written, reads go on, writes work once space is freed', { skip }, async (t) => {
  const disk = await mountSmallDisk(t, '8m')
  const runsDir = join(disk.dir, 'runs')
  const imageUrl = await startImageHost(t, smallImage)
  // The index in its default place, on the same disk as the runs.
  const app = await build(t, { RUNS_DIR: runsDir })

  const earlier = (await app.inject({ method: 'POST', url: '/api/runs', payload: NEW_RUN })).json()
  const writes = writePaths(app, earlier.run_id, smallImage, imageUrl)
  t.equal((await writes[2]![2]()).statusCode, 201, 'an image stored before the disk filled')
  const stored = (await app.inject({ url: `/api/runs/${earlier.run_id}` })).json()
  const before = await snapshot(runsDir)
  const listedBefore = await listedRuns(app)

  await disk.fill()
  t.ok(await disk.available() < 4096, 'the disk is full')
  const notReady = await app.inject({ url: '/ready' })
  t.equal(notReady.statusCode, 503, '/ready: a small write fails')
  t.match(notReady.json(), { code: 'NOT_READY', message: /runs folder/ })

  for (const [what, , send] of writes) {
    const res = await send()
    assertRefused(t, res, 507, 'INSUFFICIENT_STORAGE', what, disk.dir)
    if (what === 'pipeline execute') t.notOk(res.headers['x-run-id'], 'no run was created to name')
  }
  const streamed = await app.inject({ method: 'POST', url: '/api/schema/pipeline/execute', payload: EXECUTE, headers: { accept: 'text/event-stream' } })
  t.match(parseSse(streamed.body).at(-1), { event: 'error', data: { run_id: null, statusCode: 507, code: 'INSUFFICIENT_STORAGE' } }, 'a live run says so as its error event')

  t.same(await snapshot(runsDir), before, 'every file as it was: no temporary file, no new output, metadata.json unchanged')
  t.same(await listedRuns(app), listedBefore, 'the listing is unchanged')
  await assertStoreWhole(t, app, runsDir)
  t.same((await app.inject({ url: `/api/runs/${earlier.run_id}` })).json(), stored, 'the run reads as before')
  const image = await app.inject({ url: `/api/media/image/${earlier.run_id}` })
  t.equal(image.statusCode, 200, 'media is served while the disk is full')
  t.equal(sha256(image.rawPayload), sha256(smallImage), 'with its bytes')
  t.equal((await app.inject({ url: `/api/runs/${earlier.run_id}/export.zip` })).statusCode, 200, 'the run exports')

  await disk.free()
  t.equal((await app.inject({ url: '/ready' })).statusCode, 200, 'ready again once space is freed')
  for (const [what, okStatus, send] of writes) {
    const res = await send()
    t.equal(res.statusCode, okStatus, `${what} works again: ${res.body.slice(0, 200)}`)
  }
  t.equal((await app.inject({ url: `/api/runs/${earlier.run_id}` })).json().outputs.length, 4, 'the three uploads were added to the earlier one')
  await assertStoreWhole(t, app, runsDir)
})

t.test('a disk with a little room: a pipeline output or an upload that does not fit is refused and recorded, nothing half-written', { skip }, async (t) => {
  const disk = await mountSmallDisk(t, '8m')
  const runsDir = join(disk.dir, 'runs')
  const big = noisyPng(256)
  const imageUrl = await startImageHost(t, big)
  // The index on another disk: only the runs folder is short of room.
  const app = await build(t, { RUNS_DIR: runsDir, RUN_INDEX_PATH: join(await tempRunsDir(t), 'index.sqlite') })
  const earlier = (await app.inject({ method: 'POST', url: '/api/runs', payload: NEW_RUN })).json()

  await disk.fill(96 * 1024)
  t.equal((await app.inject({ url: '/ready' })).statusCode, 200, 'ready: small writes still fit')
  const res = await app.inject({ method: 'POST', url: '/api/schema/pipeline/execute', payload: EXECUTE })
  assertRefused(t, res, 507, 'INSUFFICIENT_STORAGE', 'a picture larger than the room left', disk.dir)
  const runId = res.headers['x-run-id'] as string
  t.ok(runId, 'the run was created, and its id given')
  const failed = (await app.inject({ url: `/api/runs/${runId}` })).json()
  t.match(failed, { status: 'failed', outputs: [], errors: [{ stage: 'generation', code: 'INSUFFICIENT_STORAGE', message: String }] }, 'the run records why it failed')
  t.notMatch(failed.errors[0].message, /ENOSPC|\//, 'in plain words')
  t.match(failed.stages.at(-1), { stage: 'generation', status: 'failed', error: { code: 'INSUFFICIENT_STORAGE' } })
  t.same((await readdir(join(runsDir, runId))).sort(), ['input_text.txt', 'metadata.json', 'transformed_text.txt'], 'no half-written picture')

  const before = await snapshot(runsDir)
  for (const [what, , send] of writePaths(app, earlier.run_id, big, imageUrl).slice(2, 5)) {
    assertRefused(t, await send(), 507, 'INSUFFICIENT_STORAGE', `${what} of ${big.length} bytes`, disk.dir)
  }
  t.same(await snapshot(runsDir), before, 'uploads that broke off half-way left nothing')
  await assertStoreWhole(t, app, runsDir)

  await disk.free()
  const { body, contentType } = multipartBody([{ name: 'config', value: 'upload' }, { name: 'file', value: big, filename: 'noise.png' }])
  const upload = await app.inject({ method: 'POST', url: `/api/runs/${earlier.run_id}/media`, payload: body, headers: { 'content-type': contentType } })
  t.equal(upload.statusCode, 201, 'the same upload fits once space is freed')
  t.equal(upload.json().sha256, sha256(big))
  await assertStoreWhole(t, app, runsDir)
})

t.test('the index on a full disk of its own: runs are still stored and served, and listed once it has room', { skip }, async (t) => {
  const disk = await mountSmallDisk(t, '2m')
  const runsDir = await tempRunsDir(t)
  const app = await build(t, { RUNS_DIR: runsDir, RUN_INDEX_PATH: join(disk.dir, 'index.sqlite') })
  const first = (await app.inject({ method: 'POST', url: '/api/runs', payload: NEW_RUN })).json()
  t.same(await listedRuns(app), [first.run_id])

  await disk.fill()
  const created = await app.inject({ method: 'POST', url: '/api/runs', payload: NEW_RUN })
  t.equal(created.statusCode, 201, 'the run is stored although its index entry cannot be written')
  const runId = created.json().run_id
  const patched = await app.inject({ method: 'PATCH', url: `/api/runs/${runId}`, payload: { transformed_text: 'A flower in a meadow' } })
  t.equal(patched.statusCode, 200, 'and changed')
  t.equal((await app.inject({ url: `/api/runs/${runId}` })).statusCode, 200)
  t.equal((await app.inject({ url: '/api/runs' })).statusCode, 200, 'the listing still answers')
  t.equal((await app.inject({ url: '/ready' })).statusCode, 200, 'ready: the runs folder takes writes, the index answers')

  await disk.free()
  t.same(await listedRuns(app), await runFolders(runsDir), 'once the index has room, it lists every run')
  const entry = (await app.inject({ url: '/api/runs', query: { q: 'meadow' } })).json().runs
  t.match(entry, [{ run_id: runId, transformed_text: 'A flower in a meadow' }], 'with its latest change')
})

t.test('a start on a full disk: the service comes up, serves and lists its runs, and builds its index file again once there is room', { skip }, async (t) => {
  const disk = await mountSmallDisk(t, '8m')
  const runsDir = join(disk.dir, 'runs')
  const before = await build(t, { RUNS_DIR: runsDir })
  const runId = (await before.inject({ method: 'POST', url: '/api/runs', payload: NEW_RUN })).json().run_id
  const data = { source: 'data', data: `data:image/png;base64,${smallImage.toString('base64')}`, config: 'upload' }
  t.equal((await before.inject({ method: 'POST', url: `/api/runs/${runId}/media`, payload: data })).statusCode, 201)
  t.equal((await before.inject({ method: 'PATCH', url: `/api/runs/${runId}`, payload: { status: 'running' } })).statusCode, 200)
  await before.close()

  // The index file in its default place, on the full disk: SQLite cannot even open it for writing.
  await disk.fill()
  const app = await build(t, { RUNS_DIR: runsDir })
  t.same(await listedRuns(app), [runId], 'its runs are listed')
  t.equal(sha256((await app.inject({ url: `/api/media/image/${runId}` })).rawPayload), sha256(smallImage), 'and served')
  // The index file was given up, and its room with it: the disk fills up again.
  await disk.fill()
  t.equal((await app.inject({ url: '/ready' })).statusCode, 503, 'not ready for writes')
  assertRefused(t, await app.inject({ method: 'POST', url: '/api/runs', payload: NEW_RUN }), 507, 'INSUFFICIENT_STORAGE', 'POST /api/runs', disk.dir)
  t.same(await listedRuns(app), [runId], 'listed from memory all the same')

  await disk.free()
  t.equal((await app.inject({ method: 'POST', url: '/api/runs', payload: NEW_RUN })).statusCode, 201, 'writes work once space is freed')
  t.same(await listedRuns(app), await runFolders(runsDir), 'and are listed')
  await app.close()

  const restarted = await build(t, { RUNS_DIR: runsDir })
  t.same(await listedRuns(restarted), await runFolders(runsDir), 'the next start lists every run')
  t.match((await restarted.inject({ url: `/api/runs/${runId}` })).json(), { status: 'failed', errors: [{ code: 'RUN_INTERRUPTED' }] }, 'and ends the run left running once it can write')
  await assertStoreWhole(t, restarted, runsDir)
})

t.test('a read-only disk: every write answers 503 STORAGE_UNAVAILABLE, reads go on, writes work once it is writable again', { skip }, async (t) => {
  const disk = await mountSmallDisk(t, '8m')
  const runsDir = join(disk.dir, 'runs')
  const imageUrl = await startImageHost(t, smallImage)
  // A file open for writing keeps a remount read-only from happening: the index lives elsewhere.
  const admin = { authorization: 'Bearer lab-admin-token-0123' }
  const app = await build(t, { RUNS_DIR: runsDir, RUN_INDEX_PATH: join(await tempRunsDir(t), 'index.sqlite'), ADMIN_TOKEN: 'lab-admin-token-0123' })
  const earlier = (await app.inject({ method: 'POST', url: '/api/runs', payload: NEW_RUN })).json()
  const doomed = (await app.inject({ method: 'POST', url: '/api/runs', payload: NEW_RUN })).json()
  const trashed = (await app.inject({ method: 'POST', url: '/api/runs', payload: NEW_RUN })).json()
  t.equal((await app.inject({ method: 'DELETE', url: `/api/runs/${trashed.run_id}`, headers: admin })).statusCode, 204)
  const writes: Write[] = [
    ...writePaths(app, earlier.run_id, smallImage, imageUrl),
    ['DELETE /api/runs/:run_id', 204, async () => await app.inject({ method: 'DELETE', url: `/api/runs/${doomed.run_id}`, headers: admin })],
    ['POST /api/trash/:run_id/restore', 200, async () => await app.inject({ method: 'POST', url: `/api/trash/${trashed.run_id}/restore`, headers: admin })]
  ]
  t.equal((await writes[2]![2]()).statusCode, 201)
  const left = (await app.inject({ method: 'POST', url: '/api/runs', payload: NEW_RUN })).json()
  t.equal((await app.inject({ method: 'PATCH', url: `/api/runs/${left.run_id}`, payload: { status: 'running' } })).statusCode, 200)
  const before = await snapshot(runsDir)

  await disk.readOnly(true)
  t.teardown(async () => { await disk.readOnly(false).catch(() => {}) })
  t.equal((await app.inject({ url: '/ready' })).statusCode, 503, '/ready: not ready')
  for (const [what, , send] of writes) assertRefused(t, await send(), 503, 'STORAGE_UNAVAILABLE', what, disk.dir)
  t.equal(sha256((await app.inject({ url: `/api/media/image/${earlier.run_id}` })).rawPayload), sha256(smallImage), 'media is served')
  t.same(await snapshot(runsDir), before)
  // A start meanwhile (another instance, a restart) cannot end the run left running, and comes up all the same.
  const second = await build(t, { RUNS_DIR: runsDir, RUN_INDEX_PATH: join(await tempRunsDir(t), 'index.sqlite') })
  t.equal((await second.inject({ url: `/api/runs/${left.run_id}` })).json().status, 'running', 'a run left running stays so while nothing can be written')
  t.equal(sha256((await second.inject({ url: `/api/media/image/${earlier.run_id}` })).rawPayload), sha256(smallImage), 'and the start serves what there is')
  await second.close()

  await disk.readOnly(false)
  for (const [what, okStatus, send] of writes) t.equal((await send()).statusCode, okStatus, `${what} works again`)
  await assertStoreWhole(t, app, runsDir)
  const third = await build(t, { RUNS_DIR: runsDir, RUN_INDEX_PATH: join(await tempRunsDir(t), 'index.sqlite') })
  t.match((await third.inject({ url: `/api/runs/${left.run_id}` })).json(), { status: 'failed', errors: [{ code: 'RUN_INTERRUPTED' }] }, 'the next start that can write ends it')
})
