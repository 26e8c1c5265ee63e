import Database from 'better-sqlite3'
import t from 'tap'
import { fileTypeFromBuffer } from 'file-type'
import { imageSize } from 'image-size'
import { createHash } from 'node:crypto'
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { buildApp } from '../../app.js'
import { paintPicture } from '../../services/backends/builtin/picture.js'
import { verifyStore } from '../../services/storage/verify-store.js'
import { fixtures } from '../fixtures/media.js'
import { build, storeDriver, storedView, tempRunsDir, testConfig } from '../helper.js'

type App = Awaited<ReturnType<typeof build>>

const WEBP = 'image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8' // what Chromium sends for <img>
const ADMIN_TOKEN = 'a-long-admin-token-for-tests'
const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex')
// An 800 × 600 picture of the builtin generator: large enough that every thumbnail is smaller.
const picture = paintPicture('Eine Blume auf der Wiese', 7, 800, 600)

async function newRun (app: App): Promise<string> {
  return (await app.inject({ method: 'POST', url: '/api/runs', payload: { schema: 'dada', execution_mode: 'eco', input_text: 'Eine Blume' } })).json().run_id
}

async function store (t: Parameters<typeof build>[0], app: App, runId: string, bytes: Buffer): Promise<{ sha256: string, filename: string }> {
  const res = await app.inject({ method: 'POST', url: `/api/runs/${runId}/media`, payload: { source: 'data', data: bytes.toString('base64'), config: 'test' } })
  t.equal(res.statusCode, 201)
  return res.json()
}

/** Every stored file of a run with its bytes, on the local disk with its inode too: what "unchanged" means for a run. */
async function snapshot (runsDir: string, runId: string): Promise<Record<string, { bytes: string, ino?: number, mtimeMs?: number }>> {
  const stored = storedView(runsDir)
  const files: Record<string, { bytes: string, ino?: number, mtimeMs?: number }> = {}
  for (const name of await stored.list(runId)) {
    // An object has no inode: in a bucket, unchanged is the same bytes.
    const info = storeDriver() === 'local' ? await stat(join(runsDir, runId, name)) : null
    files[name] = { bytes: sha256(await stored.read(runId, name)), ...(info === null ? {} : { ino: info.ino, mtimeMs: info.mtimeMs }) }
  }
  return files
}

t.test('?width= answers a real WebP or JPEG of that width, smaller than the original, made once and kept outside the run folder', async (t) => {
  const runsDir = await tempRunsDir(t)
  const app = await build(t, { RUNS_DIR: runsDir })
  const runId = await newRun(app)
  const output = await store(t, app, runId, picture)
  const runFolder = await snapshot(runsDir, runId)

  const res = await app.inject({ url: `/api/media/image/${runId}/0?width=320`, headers: { accept: WEBP } })
  t.equal(res.statusCode, 200)
  t.same(await fileTypeFromBuffer(res.rawPayload), { ext: 'webp', mime: 'image/webp' })
  t.match(imageSize(res.rawPayload), { width: 320, height: 240 })
  t.ok(res.rawPayload.length < picture.length / 4, `${res.rawPayload.length} bytes against the original's ${picture.length}`)
  t.equal(res.headers['content-type'], 'image/webp')
  t.equal(res.headers['content-length'], String(res.rawPayload.length))
  t.equal(res.headers.etag, `"${output.sha256}.320.webp"`)
  t.equal(res.headers['cache-control'], 'public, max-age=31536000, immutable')
  t.equal(res.headers.vary, 'Accept')
  t.equal(res.headers['x-content-type-options'], 'nosniff')
  t.equal(res.headers['content-disposition'], 'inline; filename="output_image.320.webp"')

  const cached = join(runsDir, '.thumbnails', runId, `${output.sha256}.320.webp`)
  t.same(await readFile(cached), res.rawPayload, 'kept in the cache folder, outside the run folder')
  const first = await stat(cached)
  const again = await app.inject({ url: `/api/media/image/${runId}?width=320`, headers: { accept: WEBP } })
  t.same(again.rawPayload, res.rawPayload, 'the newest image is the same one')
  const second = await stat(cached)
  t.same([second.ino, second.mtimeMs], [first.ino, first.mtimeMs], 'served from the cache, not made again')
  t.equal(app.thumbnails.made, 1)

  const jpeg = await app.inject({ url: `/api/media/image/${runId}/0?width=160` })
  t.same(await fileTypeFromBuffer(jpeg.rawPayload), { ext: 'jpg', mime: 'image/jpeg' }, 'JPEG without image/webp in Accept')
  t.match(imageSize(jpeg.rawPayload), { width: 160, height: 120 })
  t.equal(jpeg.headers.etag, `"${output.sha256}.160.jpg"`)
  t.equal(jpeg.headers.vary, 'Accept')
  const refused = await app.inject({ url: `/api/media/image/${runId}/0?width=160`, headers: { accept: 'image/webp;q=0, image/*' } })
  t.equal(refused.headers['content-type'], 'image/jpeg', 'image/webp;q=0 means no WebP')

  const notModified = await app.inject({ url: `/api/media/image/${runId}/0?width=320`, headers: { accept: WEBP, 'if-none-match': res.headers.etag as string } })
  t.equal(notModified.statusCode, 304)
  t.equal(notModified.rawPayload.length, 0)
  t.equal(notModified.headers.etag, res.headers.etag)
  t.equal(notModified.headers.vary, 'Accept')
  const otherFormat = await app.inject({ url: `/api/media/image/${runId}/0?width=320`, headers: { 'if-none-match': res.headers.etag as string } })
  t.equal(otherFormat.statusCode, 200, 'the WebP\'s ETag does not stand for the JPEG')
  t.equal(otherFormat.headers['content-type'], 'image/jpeg')

  const head = await app.inject({ method: 'HEAD', url: `/api/media/image/${runId}/0?width=640`, headers: { accept: WEBP } })
  t.equal(head.statusCode, 200)
  t.equal(head.headers['content-type'], 'image/webp')
  t.equal(head.rawPayload.length, 0)
  const full = await app.inject({ url: `/api/media/image/${runId}/0?width=640&download=1`, headers: { accept: WEBP } })
  t.equal(head.headers['content-length'], String(full.rawPayload.length))
  t.match(imageSize(full.rawPayload), { width: 640, height: 480 })
  t.equal(full.headers['content-disposition'], 'attachment; filename="output_image.640.webp"')

  const original = await app.inject({ url: `/api/media/image/${runId}/0` })
  t.same(original.rawPayload, picture, 'without width: the original, as before')
  t.notOk(original.headers.vary)
  t.same(await snapshot(runsDir, runId), runFolder, 'the run is byte for byte (on disk inode for inode) as it was')
  t.same(await app.storage.listRunIds(), [runId], 'the cache folder is no run')
  t.match(await verifyStore(app.runstore.blobs), { runs: 1, problems: [] }, 'nor does verify see it')
})

t.test('a picture narrower than the width keeps its own width; an animation gives its first frame', async (t) => {
  const app = await build(t)
  const runId = await newRun(app)
  await store(t, app, runId, await readFile(fixtures.png.file))
  await store(t, app, runId, await readFile(fixtures.gif.file))
  await store(t, app, runId, await readFile(fixtures.jpeg.file))

  const small = await app.inject({ url: `/api/media/image/${runId}/0?width=1280`, headers: { accept: WEBP } })
  t.equal(small.statusCode, 200)
  t.match(imageSize(small.rawPayload), { width: 64, height: 48 }, 'never scaled up')

  const animated = await app.inject({ url: `/api/media/image/${runId}/1?width=160`, headers: { accept: WEBP } })
  t.equal(animated.statusCode, 200)
  t.same(await fileTypeFromBuffer(animated.rawPayload), { ext: 'webp', mime: 'image/webp' })
  t.match(imageSize(animated.rawPayload), { width: 40, height: 30 })
  t.notOk(animated.rawPayload.includes('ANIM'), 'one frame, no animation chunk')

  const jpeg = await app.inject({ url: `/api/media/image/${runId}/2?width=160` })
  t.same(await fileTypeFromBuffer(jpeg.rawPayload), { ext: 'jpg', mime: 'image/jpeg' })
  t.match(imageSize(jpeg.rawPayload), { width: 80, height: 60 })
})

t.test('widths outside the offered ones are a 400 that names them; missing runs and outputs 400/404', async (t) => {
  const app = await build(t)
  const runId = await newRun(app)
  await store(t, app, runId, await readFile(fixtures.png.file))
  for (const width of ['500', '0', '-320', 'abc', '320.5', '']) {
    const res = await app.inject({ url: `/api/media/image/${runId}/0?width=${width}` })
    t.equal(res.statusCode, 400, `width=${width}`)
    t.match(res.json(), { statusCode: 400, error: 'Bad Request', code: 'INVALID_WIDTH', message: /is not offered; use one of 160, 320, 640, 1280$/ })
    t.equal(res.headers['cache-control'], 'no-store')
  }
  t.match((await app.inject({ url: '/api/media/image/0193f1e2-7c4a-7b9e-8d2f-4c1a2b3c4d5e/0?width=320' })).json(), { statusCode: 404, code: 'RUN_NOT_FOUND' })
  t.match((await app.inject({ url: `/api/media/image/${runId}/3?width=320` })).json(), { statusCode: 404, code: 'MEDIA_NOT_READY' })
  t.match((await app.inject({ url: '/api/media/image/nope/0?width=320' })).json(), { statusCode: 400, code: 'INVALID_RUN_ID' })
})

t.test('a thumbnail that cannot be made is a 422 with a code, never a 500', async (t) => {
  const runsDir = await tempRunsDir(t)
  const app = await build(t, { RUNS_DIR: runsDir })
  const runId = await newRun(app)
  await store(t, app, runId, await readFile(fixtures.bmp.file))
  const damaged = await store(t, app, runId, picture)
  const large = await store(t, app, runId, paintPicture('gross', 3, 400, 300))

  const bmp = await app.inject({ url: `/api/media/image/${runId}/0?width=160` })
  t.equal(bmp.statusCode, 422, 'sharp reads no BMP')
  t.match(bmp.json(), { code: 'THUMBNAIL_FAILED', message: new RegExp(`^no thumbnail can be made of ${runId}/output_image.bmp: `) })
  t.equal(bmp.headers['cache-control'], 'no-store')
  t.equal((await app.inject({ url: `/api/media/image/${runId}/0` })).statusCode, 200, 'the original still answers')

  // Bit rot, or a hand edit: the bytes on disk are no longer the ones the metadata's sha256 names.
  const bytes = Buffer.from(picture)
  bytes[bytes.length - 20] = bytes[bytes.length - 20]! ^ 0xff
  await storedView(runsDir).write(runId, damaged.filename, bytes)
  const rotten = await app.inject({ url: `/api/media/image/${runId}/1?width=160` })
  t.equal(rotten.statusCode, 422)
  t.match(rotten.json(), { code: 'THUMBNAIL_FAILED', message: /no longer matches its sha256/ })
  t.notOk(await readdir(join(runsDir, '.thumbnails', runId)).catch(() => []).then((names) => names.some((n) => n.startsWith(damaged.sha256))), 'nothing cached for it')

  // The limit was lowered after the picture was stored: its 120 000 pixels are now too many to decode.
  await app.close()
  const strict = await build(t, { RUNS_DIR: runsDir, MAX_IMAGE_PIXELS: '100000' })
  const tooLarge = await strict.inject({ url: `/api/media/image/${runId}/2?width=160` })
  t.equal(tooLarge.statusCode, 422)
  t.match(tooLarge.json(), { code: 'IMAGE_TOO_LARGE', message: 'the image is 400 × 300 pixels, more than the limit of 100000 pixels' })
  t.notOk(large.sha256 === damaged.sha256)
})

t.test('the same first requests at once make the thumbnail once', async (t) => {
  const app = await build(t)
  const runId = await newRun(app)
  await store(t, app, runId, picture)
  const answers = await Promise.all(Array.from({ length: 8 }, async () => await app.inject({ url: `/api/media/image/${runId}/0?width=640`, headers: { accept: WEBP } })))
  t.same(answers.map((a) => a.statusCode), Array(8).fill(200))
  for (const answer of answers) t.same(answer.rawPayload, answers[0]!.rawPayload)
  t.equal(app.thumbnails.made, 1)
})

t.test('a deleted run\'s thumbnails go with it; those of runs gone otherwise go at the next start after a crash', async (t) => {
  const runsDir = await tempRunsDir(t)
  const app = await build(t, { RUNS_DIR: runsDir, ADMIN_TOKEN })
  const kept = await newRun(app)
  const deleted = await newRun(app)
  await store(t, app, kept, picture)
  await store(t, app, deleted, picture)
  for (const runId of [kept, deleted]) t.equal((await app.inject({ url: `/api/media/image/${runId}/0?width=160` })).statusCode, 200)
  const cache = join(runsDir, '.thumbnails')
  t.same((await readdir(cache)).sort(), [kept, deleted].sort())

  t.equal((await app.inject({ method: 'DELETE', url: `/api/runs/${deleted}`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).statusCode, 204)
  t.same((await readdir(cache)).filter((name) => !name.startsWith('.tmp-')), [kept], 'gone with the run, before DELETE answered')
  t.equal((await app.inject({ url: `/api/media/image/${deleted}/0?width=160` })).statusCode, 404)
  await app.close()

  // What another process or a crash can leave: thumbnails of a run removed by hand, a half-written file.
  const gone = '0193f1e2-7c4a-7b9e-8d2f-4c1a2b3c4d5e'
  await mkdir(join(cache, gone))
  await writeFile(join(cache, gone, 'x.160.jpg'), 'x')
  await writeFile(join(cache, '.tmp-0123456789abcdef.mp4'), 'x')
  await writeFile(join(cache, kept, '.tmp-0123456789abcdef-y.160.jpg'), 'x')
  const keptFile = (await readdir(join(cache, kept)))[1]!
  const before = await stat(join(cache, kept, keptFile))

  // As a crash leaves it: the index says its process never stopped cleanly (after a clean stop nothing is swept).
  const index = new Database(join(runsDir, '.index.sqlite'))
  index.prepare("UPDATE meta SET value = '0' WHERE key = 'clean_stop'").run()
  index.close()
  const restarted = await build(t, { RUNS_DIR: runsDir })
  t.same(await readdir(cache), [kept], 'the sweep removed the thumbnails of a run that is gone, and the temp file')
  t.same(await readdir(join(cache, kept)), [keptFile])
  t.equal((await stat(join(cache, kept, keptFile))).ino, before.ino, 'a live run\'s thumbnail stays')
  t.equal((await restarted.inject({ url: `/api/media/image/${kept}/0?width=160` })).statusCode, 200)
  t.equal(restarted.thumbnails.made, 0, 'and is served from the cache after a restart')
})

t.test('THUMBNAIL_CACHE_DIR elsewhere; never RUNS_DIR itself or a run folder; a cache that cannot be written still answers', async (t) => {
  const runsDir = await tempRunsDir(t)
  const cacheDir = join(await tempRunsDir(t), 'thumbs')
  const app = await build(t, { RUNS_DIR: runsDir, THUMBNAIL_CACHE_DIR: cacheDir })
  const runId = await newRun(app)
  const output = await store(t, app, runId, picture)
  t.equal((await app.inject({ url: `/api/media/image/${runId}/0?width=160` })).statusCode, 200)
  t.same(await readdir(join(cacheDir, runId)), [`${output.sha256}.160.jpg`])
  t.notOk((await readdir(runsDir)).includes('.thumbnails'))

  await t.rejects(buildApp(testConfig(runsDir, { THUMBNAIL_CACHE_DIR: runsDir })), /THUMBNAIL_CACHE_DIR .* is RUNS_DIR or inside a run folder/)
  await t.rejects(buildApp(testConfig(runsDir, { THUMBNAIL_CACHE_DIR: join(runsDir, runId, 'thumbs') })), /inside a run folder/)

  // A file where the cache folder should be: nothing can be kept, every answer is made anew.
  const blocked = join(await tempRunsDir(t), 'not-a-folder')
  await writeFile(blocked, 'x')
  const uncached = await build(t, { RUNS_DIR: runsDir, THUMBNAIL_CACHE_DIR: blocked })
  for (let i = 0; i < 2; i++) {
    const res = await uncached.inject({ url: `/api/media/image/${runId}/0?width=160` })
    t.equal(res.statusCode, 200)
    t.match(imageSize(res.rawPayload), { width: 160 })
  }
  t.equal(uncached.thumbnails.made, 2)
})

t.test('the OpenAPI document describes the width, the image answers and the 422', async (t) => {
  const app = await build(t)
  const spec = (await app.inject({ url: '/openapi.json' })).json()
  for (const type of ['image', 'audio', 'video', 'model3d']) {
    const route = spec.paths[`/api/media/${type}/{run_id}/{index}`].get
    const width = route.parameters.find((p: { name: string }) => p.name === 'width')
    t.match(width, { in: 'query', required: false, schema: { type: 'integer', enum: [160, 320, 640, 1280] } }, type)
    t.match(route.responses['200'].content, { 'image/webp': { schema: { type: 'string', format: 'binary' } }, 'image/jpeg': { schema: { format: 'binary' } } })
    t.ok(route.responses['422'], `${type}: 422 declared`)
  }
})
