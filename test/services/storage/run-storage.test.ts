import t from 'tap'
import { createHash } from 'node:crypto'
import { link, mkdir, readdir, readFile, writeFile, stat } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { Readable } from 'node:stream'
import { FetchPolicy } from '../../../services/http/address-policy.js'
import { MediaIngester } from '../../../services/storage/ingest.js'
import { LocalBlobStore } from '../../../services/storage/blob/local.js'
import { RunStorage, outputFilename } from '../../../services/storage/run-storage.js'
import { fixtures } from '../../fixtures/media.js'
import { startMediaServer, serveBytes, serveStatus, serveStall, serveTruncated, redirectTo, serveChunked } from '../../fakes/media-server.js'
import { tempRunsDir } from '../../helper.js'
import { blobStoreOf, eachDriver, type StorageDriver } from '../../storage-drivers.js'

async function makeStorage (t: Parameters<typeof tempRunsDir>[0], options: { maxBytes?: number, fetchTimeoutMs?: number, allow?: string[], maxRedirects?: number } = {}, driver: StorageDriver = 'local'): Promise<RunStorage> {
  const storage = new RunStorage({
    blobs: (await blobStoreOf(t, driver)).blobs,
    ingester: new MediaIngester({
      maxBytes: options.maxBytes ?? 10 * 1024 * 1024,
      fetchTimeoutMs: options.fetchTimeoutMs ?? 5000,
      maxRedirects: options.maxRedirects ?? 3,
      fetchPolicy: new FetchPolicy(options.allow ?? ['127.0.0.1'])
    })
  })
  await storage.init()
  return storage
}

const rootOf = (storage: RunStorage): string => (storage.blobs as LocalBlobStore).root
const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex')
const readJson = async (path: string): Promise<any> => JSON.parse(await readFile(path, 'utf8'))
// Read through the blob store, so the same assertions hold on every driver.
const readText = async (storage: RunStorage, runId: string, name: string): Promise<string> => (await storage.blobs.read(runId, name)).toString('utf8')
const storedMetadata = async (storage: RunStorage, runId: string): Promise<any> => JSON.parse(await readText(storage, runId, 'metadata.json'))
const newRun = async (storage: RunStorage) => await storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'Eine Blume auf der Wiese', user_id: 'DOE_J' })

eachDriver(t, 'createRun makes a whole run folder with metadata.json and input_text.txt', async (t, driver) => {
  const storage = await makeStorage(t, {}, driver)
  const run = await newRun(storage)
  t.match(run.run_id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'a UUIDv7')
  t.same(await storage.blobs.list(run.run_id), ['input_text.txt', 'metadata.json'])
  t.equal(await readText(storage, run.run_id, 'input_text.txt'), 'Eine Blume auf der Wiese')
  const onDisk = await storedMetadata(storage, run.run_id)
  t.same(onDisk, run)
  t.match(onDisk, { metadata_version: 1, status: 'created', schema: 'dada', execution_mode: 'eco', user_id: 'DOE_J', transformed_text: null, outputs: [], stages: [], errors: [] })

  const later = await newRun(storage)
  t.ok(later.run_id > run.run_id, 'ids sort by creation time')
  t.same(await storage.listRunIds(), [later.run_id, run.run_id], 'newest first')
})

eachDriver(t, 'updates: transformed text, status, stages, errors; internal fields never written', async (t, driver) => {
  const storage = await makeStorage(t, {}, driver)
  const run = await newRun(storage)
  await storage.setTransformedText(run.run_id, 'A surreal flower')
  t.equal(await readText(storage, run.run_id, 'transformed_text.txt'), 'A surreal flower')
  await storage.setStatus(run.run_id, 'running')
  await storage.recordStage(run.run_id, { stage: 'translation', status: 'completed', output: 'A flower', provider: 'builtin', duration_ms: 3, _debug: 'secret' } as any)
  await storage.recordError(run.run_id, { stage: 'generation', code: 'BACKEND_FAILED', message: 'boom', details: { _trace: 'x', node: '9' } })
  const done = await storage.setStatus(run.run_id, 'completed')
  const onDisk = await storedMetadata(storage, run.run_id)
  t.same(onDisk, done)
  t.equal(onDisk.transformed_text, 'A surreal flower')
  t.equal(onDisk.status, 'completed')
  t.same(onDisk.stages, [{ stage: 'translation', status: 'completed', output: 'A flower', provider: 'builtin', duration_ms: 3 }])
  t.match(onDisk.errors, [{ stage: 'generation', code: 'BACKEND_FAILED', message: 'boom', details: { node: '9' } }])
  t.notOk(JSON.stringify(onDisk).includes('"_'), 'no field starting with _ anywhere')
  t.ok(Date.parse(onDisk.updated_at) >= Date.parse(onDisk.timestamp))

  await t.rejects(storage.setStatus(run.run_id, 'running'), { code: 'INVALID_STATUS', statusCode: 409 }, 'a finished run stays finished')
  t.equal((await storedMetadata(storage, run.run_id)).status, 'completed')
  t.same(await storage.setStatus(run.run_id, 'completed'), await storage.getMetadata(run.run_id), 'setting the same status again is harmless')
  const fresh = await newRun(storage)
  await storage.setStatus(fresh.run_id, 'running')
  await t.rejects(storage.setStatus(fresh.run_id, 'created'), { code: 'INVALID_STATUS' }, 'a run never goes back to created')
  await storage.update(fresh.run_id, { seed: 42 })
  t.equal((await storedMetadata(storage, fresh.run_id)).seed, 42)
})

t.test('reading never creates anything; ids are checked before any path is built', async (t) => {
  const storage = await makeStorage(t)
  const missing = '0193f1e2-7c4a-7b9e-8d2f-4c1a2b3c4d5e'
  await t.rejects(storage.getMetadata(missing), { code: 'RUN_NOT_FOUND', statusCode: 404 })
  await t.rejects(storage.getOutput(missing, 'image'), { code: 'RUN_NOT_FOUND' })
  await t.rejects(storage.resolveFile(missing, 'metadata.json'), { code: 'RUN_NOT_FOUND' })
  for (const bad of ['..', '../etc', 'not-a-uuid', `${missing}/..`, '']) {
    await t.rejects(storage.getMetadata(bad), { code: 'INVALID_RUN_ID', statusCode: 400 }, JSON.stringify(bad))
    await t.rejects(storage.addMedia(bad, Buffer.from('x'), { config: 'c', backend: 'b' }), { code: 'INVALID_RUN_ID' })
  }
  t.equal(await storage.runExists(missing), false)
  t.same(await readdir(rootOf(storage)), [], 'the storage root is still empty')

  const run = await newRun(storage)
  t.equal(await storage.runExists(run.run_id.toUpperCase()), true, 'ids are case-insensitive')
  await t.rejects(storage.resolveFile(run.run_id, '../metadata.json'), { code: 'FILE_NOT_FOUND', statusCode: 404 })
  await t.rejects(storage.resolveFile(run.run_id, 'transformed_text.txt'), { code: 'FILE_NOT_FOUND' }, 'listed only once there is a transformed text')
  await writeFile(join(rootOf(storage), run.run_id, 'notes.txt'), 'copied in by hand')
  await t.rejects(storage.resolveFile(run.run_id, 'notes.txt'), { code: 'FILE_NOT_FOUND' }, 'only names the metadata lists')
  const file = await storage.resolveFile(run.run_id, 'input_text.txt')
  t.equal((await storage.readFile(file)).toString(), 'Eine Blume auf der Wiese')
  t.equal(file.output, null, 'a run file, but not media')

  await t.rejects(storage.resolveFile(missing, 'output_image.png'), { code: 'RUN_NOT_FOUND' })
  await t.rejects(storage.resolveFile('..', 'output_image.png'), { code: 'INVALID_RUN_ID' })
  await t.rejects(storage.resolveFile(run.run_id, 'output_image.png'), { code: 'FILE_NOT_FOUND' }, 'not yet stored')
  const png = await readFile(fixtures.png.file)
  const output = await storage.addMedia(run.run_id, png, { config: 'c', backend: 'b' })
  const media = await storage.resolveFile(run.run_id, output.filename)
  t.same(media.output, output)
  t.same(await storage.readFile(media), png, 'read through the blob store')
  t.same(Buffer.concat(await (await storage.openFile(media, { start: 8, end: 23 })).toArray()), png.subarray(8, 24), 'a byte range')
  t.same((await readdir(join(rootOf(storage), run.run_id))).sort(), ['input_text.txt', 'metadata.json', 'notes.txt', 'output_image.png'], 'asking created nothing')
})

t.test('addMedia from every kind of source, typed by the bytes', async (t) => {
  const storage = await makeStorage(t)
  const run = await newRun(storage)
  const dir = join(rootOf(storage), run.run_id)
  const png = await readFile(fixtures.png.file)
  const jpeg = await readFile(fixtures.jpeg.file)
  const wav = await readFile(fixtures.wav.file)
  const mp4 = await readFile(fixtures.mp4.file)
  const server = await startMediaServer({ '/picture.png': serveBytes(jpeg, 'image/png'), '/chunked': serveChunked(mp4), '/moved': redirectTo('/picture.png') })
  t.teardown(server.close)

  const fromBuffer = await storage.addMedia(run.run_id, png, { config: 'sd35_large', backend: 'comfyui', media_type: 'image', source: { kind: 'comfyui', prompt_id: 'p1', node_id: '9', original_filename: 'run1_00001_.png' } })
  t.match(fromBuffer, {
    index: 0, type: 'image', filename: 'output_image.png', backend: 'comfyui', config: 'sd35_large',
    file_size_bytes: png.length, format: 'png', mime_type: 'image/png', width: fixtures.png.width, height: fixtures.png.height,
    duration_seconds: null, sha256: sha256(png), source: { kind: 'comfyui', prompt_id: 'p1', node_id: '9', original_filename: 'run1_00001_.png' }
  })
  t.same(await readFile(join(dir, 'output_image.png')), png, 'the bytes as given')

  const fromUrl = await storage.addMedia(run.run_id, { kind: 'url', url: `${server.url}/picture.png?sig=abc` }, { config: 'gpt_image', backend: 'openai' })
  t.match(fromUrl, { index: 1, type: 'image', filename: 'output_image_2.jpg', format: 'jpg', mime_type: 'image/jpeg', source: { kind: 'url', url: `${server.url}/picture.png?sig=abc` } }, 'the URL says .png and the server says image/png, the bytes say JPEG')
  t.same(await readFile(join(dir, 'output_image_2.jpg')), jpeg)

  const redirected = await storage.addMedia(run.run_id, { kind: 'url', url: `${server.url}/moved` }, { config: 'c', backend: 'url' })
  t.equal(redirected.filename, 'output_image_3.jpg')

  const fromStream = await storage.addMedia(run.run_id, Readable.from([wav.subarray(0, 1000), wav.subarray(1000)]), { config: 'builtin_audio', backend: 'builtin' })
  t.match(fromStream, { index: 3, type: 'audio', filename: 'output_audio.wav', format: 'wav', sha256: sha256(wav), source: { kind: 'stream' } })
  t.ok(Math.abs((fromStream.duration_seconds ?? 0) - fixtures.wav.duration_seconds!) < 0.05, 'duration of the audio')

  const fromFile = await storage.addMedia(run.run_id, { kind: 'file', path: fixtures.mp4.file }, { config: 'video', backend: 'comfyui', media_type: 'video' })
  t.match(fromFile, { type: 'video', filename: 'output_video.mp4', width: fixtures.mp4.width, height: fixtures.mp4.height, source: { kind: 'file' } })
  t.ok(Math.abs((fromFile.duration_seconds ?? 0) - fixtures.mp4.duration_seconds!) < 0.1, 'duration of the video')

  const fromChunked = await storage.addMedia(run.run_id, { kind: 'url', url: `${server.url}/chunked` }, { config: 'video', backend: 'replicate' })
  t.match(fromChunked, { filename: 'output_video_2.mp4', file_size_bytes: mp4.length, sha256: sha256(mp4) })

  const dataUri = `data:image/png;base64,${jpeg.toString('base64').replace(/(.{76})/g, '$1\n')}`
  const fromDataUri = await storage.addMedia(run.run_id, { kind: 'data', data: dataUri }, { config: 'openrouter_image', backend: 'openrouter' })
  t.match(fromDataUri, { filename: 'output_image_4.jpg', format: 'jpg', source: { kind: 'data', declared_mime_type: 'image/png' } }, 'declared MIME recorded, not believed')
  const fromBase64 = await storage.addMedia(run.run_id, { kind: 'data', data: png.toString('base64') }, { config: 'gpt_image', backend: 'openai' })
  t.match(fromBase64, { filename: 'output_image_5.png', sha256: sha256(png) })

  const glb = await storage.addMedia(run.run_id, { kind: 'file', path: fixtures.glb.file }, { config: 'mesh', backend: 'upload' })
  t.match(glb, { type: 'model3d', filename: 'output_model3d.glb', mime_type: 'model/gltf-binary' })

  const metadata = await readJson(join(dir, 'metadata.json'))
  t.same(metadata.outputs.map((o: any) => o.filename), [
    'output_image.png', 'output_image_2.jpg', 'output_image_3.jpg', 'output_audio.wav', 'output_video.mp4',
    'output_video_2.mp4', 'output_image_4.jpg', 'output_image_5.png', 'output_model3d.glb'
  ])
  t.same(metadata.outputs.map((o: any) => o.index), [0, 1, 2, 3, 4, 5, 6, 7, 8])
  t.same((await readdir(dir)).filter((n) => n.startsWith('.')), [], 'no temporary files left')

  const newest = await storage.getOutput(run.run_id, 'image')
  t.equal(newest.output.filename, 'output_image_5.png', 'the newest image by default')
  t.equal((await storage.getOutput(run.run_id, 'image', 1)).output.filename, 'output_image_2.jpg', 'index counts images only')
  t.same(storage.listFiles(metadata), ['metadata.json', 'input_text.txt', ...metadata.outputs.map((o: any) => o.filename)])
})

eachDriver(t, 'no file is ever overwritten, not even a stray one', async (t, driver) => {
  const storage = await makeStorage(t, {}, driver)
  const run = await newRun(storage)
  // placed by hand: a file the metadata does not list
  await storage.blobs.writeFiles(run.run_id, [['output_image.png', 'placed by hand']])
  const png = await readFile(fixtures.png.file)
  const output = await storage.addMedia(run.run_id, png, { config: 'c', backend: 'b' })
  t.equal(output.filename, 'output_image_2.png')
  t.equal(await readText(storage, run.run_id, 'output_image.png'), 'placed by hand')
  t.equal(outputFilename('audio', 1, 'wav'), 'output_audio.wav')
  t.equal(outputFilename('audio', 3, 'wav'), 'output_audio_3.wav')
})

eachDriver(t, '50 concurrent addMedia calls on one run give 50 outputs and a valid metadata.json', async (t, driver) => {
  const storage = await makeStorage(t, {}, driver)
  const run = await newRun(storage)
  const png = await readFile(fixtures.png.file)
  const wav = await readFile(fixtures.wav.file)
  const results = await Promise.all(Array.from({ length: 50 }, async (_, i) =>
    await storage.addMedia(run.run_id, i % 5 === 0 ? Readable.from([wav]) : png, { config: `c${i}`, backend: 'test' })))
  const metadata = await storedMetadata(storage, run.run_id)
  t.equal(metadata.outputs.length, 50)
  t.same(metadata.outputs.map((o: any) => o.index), Array.from({ length: 50 }, (_, i) => i))
  t.equal(new Set(metadata.outputs.map((o: any) => o.filename)).size, 50, 'all names distinct')
  t.same(new Set(results.map((r) => r.config)), new Set(metadata.outputs.map((o: any) => o.config)))
  const files = (await storage.blobs.list(run.run_id)).filter((n) => n.startsWith('output_'))
  t.equal(files.length, 50)
  t.equal(metadata.outputs.filter((o: any) => o.type === 'audio').length, 10)
  for (const o of metadata.outputs) {
    t.equal(sha256(await storage.blobs.read(run.run_id, o.filename)), o.sha256, o.filename)
  }
})

eachDriver(t, 'a failed ingest leaves no file and no entry behind', async (t, driver) => {
  const storage = await makeStorage(t, { maxBytes: 64 * 1024, fetchTimeoutMs: 400 }, driver)
  const run = await newRun(storage)
  const before = await readText(storage, run.run_id, 'metadata.json')
  const png = await readFile(fixtures.png.file)
  const big = Buffer.alloc(64 * 1024 + 1, 1)
  const server = await startMediaServer({
    '/error': serveStatus(500, 'upstream broke'),
    '/slow': serveStall(png),
    '/truncated': serveTruncated(png),
    '/big': serveBytes(big),
    '/big-chunked': serveChunked(big),
    '/loop': redirectTo('/loop'),
    '/text.png': serveBytes(Buffer.from('hello, I am text'), 'image/png')
  })
  t.teardown(server.close)

  const cases: Array<[string, Parameters<RunStorage['addMedia']>[1], Partial<Parameters<RunStorage['addMedia']>[2]>, { code: string, statusCode: number }]> = [
    ['a text file named .png', { kind: 'file', path: fixtures.textAsPng.file }, {}, { code: 'UNSUPPORTED_MEDIA_TYPE', statusCode: 415 }],
    ['a declared media_type that lies', png, { media_type: 'audio' }, { code: 'MEDIA_TYPE_MISMATCH', statusCode: 415 }],
    ['a buffer over the limit', big, {}, { code: 'MEDIA_TOO_LARGE', statusCode: 413 }],
    ['a stream over the limit', Readable.from([big.subarray(0, 40000), big.subarray(40000)]), {}, { code: 'MEDIA_TOO_LARGE', statusCode: 413 }],
    ['a stream that breaks', new Readable({ read () { this.destroy(new Error('socket hang up')) } }), {}, { code: 'INCOMPLETE_UPLOAD', statusCode: 400 }],
    ['an invalid data URI', { kind: 'data', data: 'data:image/png;base64' }, {}, { code: 'INVALID_DATA', statusCode: 400 }],
    ['base64 garbage', { kind: 'data', data: '%%%not base64%%%' }, {}, { code: 'INVALID_DATA', statusCode: 400 }],
    ['a URL answering 500', { kind: 'url', url: `${server.url}/error` }, {}, { code: 'SOURCE_FAILED', statusCode: 502 }],
    ['a URL answering 404', { kind: 'url', url: `${server.url}/nothing` }, {}, { code: 'SOURCE_FAILED', statusCode: 502 }],
    ['a URL that times out', { kind: 'url', url: `${server.url}/slow` }, {}, { code: 'SOURCE_TIMEOUT', statusCode: 504 }],
    ['a URL whose body is cut short', { kind: 'url', url: `${server.url}/truncated` }, {}, { code: 'SOURCE_FAILED', statusCode: 502 }],
    ['a URL announcing too many bytes', { kind: 'url', url: `${server.url}/big` }, {}, { code: 'MEDIA_TOO_LARGE', statusCode: 413 }],
    ['a URL sending too many bytes', { kind: 'url', url: `${server.url}/big-chunked` }, {}, { code: 'MEDIA_TOO_LARGE', statusCode: 413 }],
    ['a redirect loop', { kind: 'url', url: `${server.url}/loop` }, {}, { code: 'SOURCE_FAILED', statusCode: 502 }],
    ['text served as image/png', { kind: 'url', url: `${server.url}/text.png` }, {}, { code: 'UNSUPPORTED_MEDIA_TYPE', statusCode: 415 }],
    ['not a URL', { kind: 'url', url: 'not a url' }, {}, { code: 'INVALID_SOURCE', statusCode: 400 }],
    ['a missing file', { kind: 'file', path: join(await tempRunsDir(t), 'nope.png') }, {}, { code: 'INVALID_SOURCE', statusCode: 400 }],
    ['an unknown source kind', { kind: 'carrier-pigeon' } as any, {}, { code: 'INVALID_SOURCE', statusCode: 400 }]
  ]
  for (const [name, input, options, error] of cases) {
    await t.rejects(storage.addMedia(run.run_id, input, { config: 'c', backend: 'b', ...options }), error, name)
    t.same(await storage.blobs.list(run.run_id), ['input_text.txt', 'metadata.json'], `${name}: no file left`)
    t.equal(await readText(storage, run.run_id, 'metadata.json'), before, `${name}: metadata unchanged`)
  }
})

t.test('staged bytes that cannot be made durable are never listed', async (t) => {
  const storage = await makeStorage(t)
  const run = await newRun(storage)
  const dir = join(rootOf(storage), run.run_id)
  const before = await readFile(join(dir, 'metadata.json'), 'utf8')
  const staged = await storage.stageMedia(run.run_id, await readFile(fixtures.png.file))
  await staged.file.durable
  // The disk reports the fsync as failed (EIO): the file must not become an output.
  const eio = Promise.reject(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }))
  eio.catch(() => {}) // as the ingester does: reported to whoever awaits it
  const failing = { ...staged, file: { ...staged.file, durable: eio } }
  const refused = await storage.commitMedia(failing, { config: 'c', backend: 'b' }).then(() => null, (err: unknown) => err)
  t.match(refused, { code: 'STORAGE_UNAVAILABLE', statusCode: 503, cause: { code: 'EIO' } }, 'the server\'s failure, in plain words; the errno stays in the cause for the log')
  t.same((await readdir(dir)).sort(), ['input_text.txt', 'metadata.json'], 'neither the temp file nor output_image.png is left')
  t.equal(await readFile(join(dir, 'metadata.json'), 'utf8'), before, 'metadata unchanged')
  t.same((await storage.getMetadata(run.run_id)).outputs, [])
})

t.test('URLs into the lab network are refused unless allowed', async (t) => {
  const storage = await makeStorage(t, { allow: [] })
  const run = await newRun(storage)
  const png = await readFile(fixtures.png.file)
  const server = await startMediaServer({ '/a.png': serveBytes(png) })
  t.teardown(server.close)
  const port = new URL(server.url).port
  for (const url of [`${server.url}/a.png`, `http://localhost:${port}/a.png`, `http://[::1]:${port}/a.png`, 'file:///etc/passwd', 'ftp://example.org/x.png']) {
    await t.rejects(storage.addMedia(run.run_id, { kind: 'url', url }, { config: 'c', backend: 'b' }), { code: 'FETCH_FORBIDDEN', statusCode: 400 }, url)
  }
  t.same(server.requests, [], 'nothing reached the server')

  const allowing = await makeStorage(t, { allow: ['localhost'] })
  const other = await newRun(allowing)
  const stored = await allowing.addMedia(other.run_id, { kind: 'url', url: `http://localhost:${port}/a.png` }, { config: 'c', backend: 'b' })
  t.equal(stored.sha256, sha256(png), 'an allowed host name is fetched')

  // Every hop of a redirect is checked again: an address, and a scheme.
  server.routes['/to-loopback'] = redirectTo(`${server.url}/a.png`)
  server.routes['/to-file'] = redirectTo('file:///etc/passwd')
  server.routes['/to-gopher'] = redirectTo(`gopher://127.0.0.1:${port}/_GET%20/a.png`)
  for (const path of ['/to-loopback', '/to-file', '/to-gopher']) {
    await t.rejects(allowing.addMedia(other.run_id, { kind: 'url', url: `http://localhost:${port}${path}` }, { config: 'c', backend: 'b' }), { code: 'FETCH_FORBIDDEN', statusCode: 400 }, `a redirect ${path}`)
  }
  t.same(server.requests.filter((r) => r === '/a.png'), ['/a.png'], 'only the allowed download reached the file')
})

t.test('leftovers of a crash are removed at start and never listed', async (t) => {
  const storage = await makeStorage(t)
  const run = await newRun(storage)
  const half = join(rootOf(storage), '.tmp-0123456789abcdef')
  await mkdir(half)
  await writeFile(join(half, 'metadata.json'), '{"run_id": "half')
  await writeFile(join(rootOf(storage), run.run_id, '.tmp-feedface-metadata.json'), '{"broken')
  await writeFile(join(rootOf(storage), run.run_id, '.tmp-deadbeef'), Buffer.alloc(100))
  t.same(await storage.listRunIds(), [run.run_id], 'a half-built folder is never listed')

  const restarted = new RunStorage({ blobs: new LocalBlobStore(rootOf(storage)), ingester: new MediaIngester({ maxBytes: 1, fetchTimeoutMs: 1, maxRedirects: 0, fetchPolicy: new FetchPolicy() }) })
  const { removed } = await restarted.init()
  t.same(removed.sort(), ['.tmp-0123456789abcdef', `${run.run_id}/.tmp-deadbeef`, `${run.run_id}/.tmp-feedface-metadata.json`].sort())
  t.same(await readdir(rootOf(storage)), [run.run_id])
  t.same((await readdir(join(rootOf(storage), run.run_id))).sort(), ['input_text.txt', 'metadata.json'])
  t.same(await restarted.getMetadata(run.run_id), run, 'the real run is intact')
})

t.test('a crash between naming an output and listing it: the start removes the unlisted twin, never a stranger', async (t) => {
  const storage = await makeStorage(t)
  const run = await newRun(storage)
  const dir = join(rootOf(storage), run.run_id)
  const png = await readFile(fixtures.png.file)
  // What commitMedia has done when the process dies before metadata.json is written:
  const orphan = await storage.stageMedia(run.run_id, png)
  await link(orphan.file.path, join(dir, 'output_image.png'))
  // ... and when it dies after metadata.json, before the temp name is removed:
  const listed = await storage.addMedia(run.run_id, await readFile(fixtures.wav.file), { config: 'c', backend: 'b' })
  const late = join(dir, '.tmp-0000000000000001')
  await link(join(dir, listed.filename), late)
  // A file somebody copied in by hand, with an output's name:
  await writeFile(join(dir, 'output_video.mp4'), 'not ours')
  await orphan.file.durable

  const restarted = new RunStorage({ blobs: new LocalBlobStore(rootOf(storage)), ingester: new MediaIngester({ maxBytes: 1024 * 1024, fetchTimeoutMs: 1, maxRedirects: 0, fetchPolicy: new FetchPolicy() }) })
  const { removed } = await restarted.init()
  t.same(removed.sort(), [`${run.run_id}/.tmp-0000000000000001`, `${run.run_id}/${basename(orphan.file.path)}`, `${run.run_id}/output_image.png`].sort())
  t.same((await readdir(dir)).sort(), ['input_text.txt', listed.filename, 'metadata.json', 'output_video.mp4'].sort(), 'the listed output and the stranger stay')
  t.same((await restarted.getMetadata(run.run_id)).outputs.map((o) => o.filename), [listed.filename])
  const next = await restarted.addMedia(run.run_id, png, { config: 'c', backend: 'b' })
  t.equal(next.filename, 'output_image.png', 'the first image\'s name is free again')
})

t.test('deleteRun removes the folder at once; isWritable reports the root', async (t) => {
  const storage = await makeStorage(t)
  const run = await newRun(storage)
  t.equal(await storage.isWritable(), true)
  await storage.deleteRun(run.run_id)
  t.same(await readdir(rootOf(storage)), [])
  await t.rejects(storage.getMetadata(run.run_id), { code: 'RUN_NOT_FOUND' }, 'not served from memory after deletion')
  await t.rejects(storage.deleteRun(run.run_id), { code: 'RUN_NOT_FOUND' })

  const gone = new RunStorage({ blobs: new LocalBlobStore(join(rootOf(storage), 'missing', 'deeper')), ingester: new MediaIngester({ maxBytes: 1, fetchTimeoutMs: 1, maxRedirects: 0, fetchPolicy: new FetchPolicy() }) })
  t.equal(await gone.isWritable(), false, 'a root that does not exist is not writable (and is not created by asking)')
  await t.rejects(stat(join(rootOf(storage), 'missing')), { code: 'ENOENT' })
})

t.test('getOutput tells "not yet" from "never"', async (t) => {
  const storage = await makeStorage(t)
  const run = await newRun(storage)
  await t.rejects(storage.getOutput(run.run_id, 'image'), { code: 'MEDIA_NOT_READY', statusCode: 404 }, 'created')
  await storage.setStatus(run.run_id, 'running')
  await t.rejects(storage.getOutput(run.run_id, 'image'), { code: 'MEDIA_NOT_READY' }, 'running')
  await storage.addMedia(run.run_id, await readFile(fixtures.png.file), { config: 'c', backend: 'b' })
  await t.rejects(storage.getOutput(run.run_id, 'image', 1), { code: 'MEDIA_NOT_READY' }, 'a second image may still come')
  await storage.setStatus(run.run_id, 'failed')
  await t.rejects(storage.getOutput(run.run_id, 'image', 1), { code: 'MEDIA_NOT_FOUND', statusCode: 404 })
  await t.rejects(storage.getOutput(run.run_id, 'audio'), { code: 'MEDIA_NOT_FOUND' })
  t.equal((await storage.getOutput(run.run_id, 'image', 0)).output.filename, 'output_image.png')
})

t.test('update writes several changes at once, or none of them', async (t) => {
  const storage = await makeStorage(t)
  const run = await storage.createRun({ status: 'running', schema: 'dada', execution_mode: 'eco', input_text: 'x' })
  t.equal(run.status, 'running', 'a run may start running')
  const dir = join(rootOf(storage), run.run_id)
  const updated = await storage.update(run.run_id, {
    transformed_text: 'A surreal x',
    stages: [{ stage: 'translation', status: 'completed' }, { stage: 'interception', status: 'completed' }],
    errors: [{ stage: 'safety', code: 'X', message: 'y', at: '2026-01-01T00:00:00.000Z' }],
    seed: 7,
    safety_level: 'youth',
    status: 'completed'
  })
  t.match(await readJson(join(dir, 'metadata.json')), {
    transformed_text: 'A surreal x', seed: 7, safety_level: 'youth', status: 'completed',
    stages: [{ stage: 'translation' }, { stage: 'interception' }], errors: [{ code: 'X', at: '2026-01-01T00:00:00.000Z' }]
  })
  t.same(await readJson(join(dir, 'metadata.json')), updated)
  t.equal(await readFile(join(dir, 'transformed_text.txt'), 'utf8'), 'A surreal x')
  const before = await readFile(join(dir, 'metadata.json'), 'utf8')
  await t.rejects(storage.update(run.run_id, { transformed_text: 'changed', status: 'running' }), { code: 'INVALID_STATUS' })
  t.equal(await readFile(join(dir, 'metadata.json'), 'utf8'), before, 'a refused update changes nothing')
  t.equal(await readFile(join(dir, 'transformed_text.txt'), 'utf8'), 'A surreal x')
  t.same((await readdir(dir)).filter((n) => n.startsWith('.')), [])
})

t.test('a media file whose listing is in place when only the folder\'s fsync fails stays, listed, in memory too', async (t) => {
  const durable = await import('../../../services/storage/blob/durable-fs.js')
  let failFolderSync = false
  const { LocalBlobStore: MockedBlobs } = await t.mockImport<typeof import('../../../services/storage/blob/local.js')>('../../../services/storage/blob/local.js', {
    '../../../services/storage/blob/durable-fs.js': {
      ...durable,
      writeFilesDurably: async (...args: Parameters<typeof durable.writeFilesDurably>) => {
        await durable.writeFilesDurably(...args)
        if (failFolderSync) throw new durable.FolderNotSyncedError(args[0], new Error('EIO'))
      }
    }
  })
  const runsDir = await tempRunsDir(t)
  const storage = new RunStorage({ blobs: new MockedBlobs(runsDir), ingester: new MediaIngester({ maxBytes: 1024 * 1024, fetchTimeoutMs: 1000, maxRedirects: 0, fetchPolicy: new FetchPolicy() }) })
  await storage.init()
  const run = await newRun(storage)
  failFolderSync = true
  await t.rejects(storage.addMedia(run.run_id, await readFile(fixtures.png.file), { config: 'c', backend: 'b' }), durable.FolderNotSyncedError)
  const onDisk = await readJson(join(runsDir, run.run_id, 'metadata.json'))
  t.same(onDisk.outputs.map((o: any) => o.filename), ['output_image.png'], 'metadata.json lists it')
  t.ok((await stat(join(runsDir, run.run_id, 'output_image.png'))).isFile(), 'and the file is not rolled back')
  t.same((await storage.getMetadata(run.run_id)).outputs.map((o) => o.filename), ['output_image.png'], 'memory agrees with the disk')
  t.same((await readdir(join(runsDir, run.run_id))).filter((n) => n.startsWith('.')), [], 'no temp file left')
})
