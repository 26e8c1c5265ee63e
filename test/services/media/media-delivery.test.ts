import t, { type Test } from 'tap'
import { createHash } from 'node:crypto'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { MediaDelivery, parseRange, type Delivery } from '../../../services/media/media-delivery.js'
import type { MediaOutput } from '../../../schemas/run.js'
import { LocalBlobStore } from '../../../services/storage/blob/local.js'
import { tempRunsDir } from '../../helper.js'

const RUN = '0193f1e2-7c4a-7b9e-8d2f-4c1a2b3c4d5e'
const OTHER_RUN = '0193f1e2-7c4a-7b9e-8d2f-000000000001'
const CREATED_AT = '2025-03-04T05:06:07.890Z'
const LAST_MODIFIED = 'Tue, 04 Mar 2025 05:06:07 GMT'

/** Bytes in which every slice is different from its neighbours. */
const patterned = (length: number, seed = 0): Buffer => Buffer.from(Array.from({ length }, (_, i) => (i * 7 + seed * 13 + (i >> 8)) % 256))
const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex')

interface StoredFile { output: MediaOutput, path: string, bytes: Buffer }

/** A real file in a run folder plus the metadata entry the storage would have written for it. */
async function storedFile (dir: string, filename: string, bytes: Buffer, mimeType = 'image/png', runId = RUN): Promise<StoredFile> {
  await mkdir(join(dir, runId), { recursive: true })
  const path = join(dir, runId, filename)
  await writeFile(path, bytes)
  const output: MediaOutput = {
    index: 0,
    type: 'image',
    filename,
    backend: 'builtin',
    config: 'test',
    file_size_bytes: bytes.length,
    format: 'png',
    mime_type: mimeType,
    width: 2,
    height: 2,
    duration_seconds: null,
    sha256: sha256(bytes),
    created_at: CREATED_AT,
    source: { kind: 'buffer' }
  }
  return { output, path, bytes }
}

async function bodyBytes (body: Delivery['body']): Promise<Buffer | null> {
  if (body === null) return null
  if (Buffer.isBuffer(body)) return body
  const chunks: Buffer[] = []
  for await (const chunk of body) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

async function setup (t: Test, options = { cacheBytes: 1024 * 1024, maxCachedFileBytes: 64 * 1024 }, size = 1000): Promise<{ delivery: MediaDelivery, file: StoredFile, dir: string }> {
  const dir = await tempRunsDir(t)
  return { delivery: new MediaDelivery({ blobs: new LocalBlobStore(dir), ...options }), file: await storedFile(dir, 'output_image.png', patterned(size)), dir }
}

t.test('parseRange', async (t) => {
  const cases: Array<[string, number, ReturnType<typeof parseRange>]> = [
    ['bytes=0-99', 1000, { start: 0, end: 99 }],
    ['bytes=100-', 1000, { start: 100, end: 999 }],
    ['bytes=-10', 1000, { start: 990, end: 999 }],
    ['bytes=0-0', 1000, { start: 0, end: 0 }],
    ['bytes=999-999', 1000, { start: 999, end: 999 }],
    ['bytes=0-', 1000, { start: 0, end: 999 }],
    ['  bytes=10-19  ', 1000, { start: 10, end: 19 }],
    ['bytes= 10-19 ', 1000, { start: 10, end: 19 }],
    ['bytes=500-5000', 1000, { start: 500, end: 999 }], // end beyond the file is clamped
    ['bytes=0-99999999999999999999', 1000, { start: 0, end: 999 }],
    ['bytes=-5000', 1000, { start: 0, end: 999 }], // suffix longer than the file: whole file
    ['bytes=1000-', 1000, 'unsatisfiable'], // start beyond the last byte
    ['bytes=1000-1000', 1000, 'unsatisfiable'],
    ['bytes=5000-6000', 1000, 'unsatisfiable'],
    ['bytes=20-10', 1000, 'unsatisfiable'], // start > end
    ['items=0-1', 1000, 'unsatisfiable'],
    ['bytes=abc', 1000, 'unsatisfiable'],
    ['bytes=-', 1000, 'unsatisfiable'],
    ['bytes=-0', 1000, 'unsatisfiable'],
    ['bytes=', 1000, 'unsatisfiable'],
    ['bytes=1-2-3', 1000, 'unsatisfiable'],
    ['bytes=0x10-20', 1000, 'unsatisfiable'],
    ['bytes=-1-2', 1000, 'unsatisfiable'],
    ['0-99', 1000, 'unsatisfiable'],
    ['', 1000, 'unsatisfiable'],
    ['bytes=0-1,5-9', 1000, null], // several ranges: whole file
    ['bytes=0-1, 5-9, -3', 1000, null],
    ['bytes=0-0', 0, 'unsatisfiable'], // an empty file has no byte to send
    ['bytes=0-', 0, 'unsatisfiable'],
    ['bytes=-10', 0, 'unsatisfiable'],
    ['bytes=-1', 1, { start: 0, end: 0 }],
    ['bytes=0-0', 1, { start: 0, end: 0 }]
  ]
  for (const [header, size, expected] of cases) t.same(parseRange(header, size), expected, `${JSON.stringify(header)} of ${size}`)
})

t.test('200 with the exact bytes and every header', async (t) => {
  const { delivery, file } = await setup(t)
  const res = await delivery.deliver(RUN, file.output, {})
  t.equal(res.statusCode, 200)
  t.same(res.headers, {
    'Content-Type': 'image/png',
    'Content-Length': 1000,
    'Accept-Ranges': 'bytes',
    ETag: `"${file.output.sha256}"`,
    'Last-Modified': LAST_MODIFIED,
    'Cache-Control': 'public, max-age=31536000, immutable',
    'X-Content-Type-Options': 'nosniff',
    'Content-Disposition': 'inline; filename="output_image.png"'
  })
  t.same(await bodyBytes(res.body), file.bytes)
})

t.test('Content-Type comes from mime_type; download makes it an attachment', async (t) => {
  const dir = await tempRunsDir(t)
  const delivery = new MediaDelivery({ blobs: new LocalBlobStore(dir), cacheBytes: 1024 * 1024, maxCachedFileBytes: 64 * 1024 })
  const audio = await storedFile(dir, 'output_audio.mp3', patterned(300, 1), 'audio/mpeg')
  const inline = await delivery.deliver(RUN, audio.output, { download: false })
  t.equal(inline.headers['Content-Type'], 'audio/mpeg')
  t.equal(inline.headers['Content-Disposition'], 'inline; filename="output_audio.mp3"')
  const attachment = await delivery.deliver(RUN, audio.output, { download: true })
  t.equal(attachment.statusCode, 200)
  t.equal(attachment.headers['Content-Disposition'], 'attachment; filename="output_audio.mp3"')
  t.same(await bodyBytes(attachment.body), audio.bytes)
  const again = await delivery.deliver(RUN, audio.output, {})
  t.equal(again.headers['Content-Disposition'], 'inline; filename="output_audio.mp3"', 'the attachment did not stick')
})

t.test('If-None-Match: exact, weak, in a list or * answers 304 without a body', async (t) => {
  const { delivery, file } = await setup(t)
  const etag = `"${file.output.sha256}"`
  for (const ifNoneMatch of [etag, `W/${etag}`, `"other", ${etag}`, `"a","b" , W/${etag}`, '*', ` ${etag} `]) {
    const res = await delivery.deliver(RUN, file.output, { ifNoneMatch })
    t.equal(res.statusCode, 304, ifNoneMatch)
    t.equal(res.body, null)
    t.equal(res.headers.ETag, etag)
    t.equal(res.headers['Last-Modified'], LAST_MODIFIED)
    t.equal(res.headers['Cache-Control'], 'public, max-age=31536000, immutable')
    t.notOk('Content-Length' in res.headers, 'no Content-Length on a 304')
    t.notOk('Content-Disposition' in res.headers)
  }
  // A 304 leaves the headers of later answers intact.
  const full = await delivery.deliver(RUN, file.output, {})
  t.equal(full.statusCode, 200)
  t.equal(full.headers['Content-Length'], 1000)
  t.equal(full.headers['Content-Disposition'], 'inline; filename="output_image.png"')
  const download304 = await delivery.deliver(RUN, file.output, { ifNoneMatch: etag, download: true })
  t.equal(download304.statusCode, 304)
  const download = await delivery.deliver(RUN, file.output, { download: true })
  t.equal(download.headers['Content-Disposition'], 'attachment; filename="output_image.png"')
})

t.test('If-None-Match that does not match answers 200, even when If-Modified-Since would match', async (t) => {
  const { delivery, file } = await setup(t)
  for (const ifNoneMatch of ['"other"', `"${file.output.sha256.slice(1)}"`, file.output.sha256, 'W/"other"', '']) {
    const res = await delivery.deliver(RUN, file.output, { ifNoneMatch, ifModifiedSince: 'Wed, 01 Jan 2031 00:00:00 GMT' })
    t.equal(res.statusCode, 200, JSON.stringify(ifNoneMatch))
    t.same(await bodyBytes(res.body), file.bytes)
  }
})

t.test('If-Modified-Since at or after created_at answers 304, before answers 200', async (t) => {
  const { delivery, file } = await setup(t)
  for (const since of [LAST_MODIFIED, 'Tue, 04 Mar 2025 05:06:08 GMT', 'Wed, 01 Jan 2031 00:00:00 GMT']) {
    const res = await delivery.deliver(RUN, file.output, { ifModifiedSince: since })
    t.equal(res.statusCode, 304, since)
    t.equal(res.body, null)
    t.notOk('Content-Length' in res.headers)
  }
  for (const since of ['Tue, 04 Mar 2025 05:06:06 GMT', 'Thu, 01 Jan 1970 00:00:00 GMT', 'not a date', '']) {
    const res = await delivery.deliver(RUN, file.output, { ifModifiedSince: since })
    t.equal(res.statusCode, 200, JSON.stringify(since))
    t.same(await bodyBytes(res.body), file.bytes)
  }
})

t.test('Range from the cache: 206 with Content-Range and the right slice', async (t) => {
  const { delivery, file } = await setup(t)
  const full = await delivery.deliver(RUN, file.output, {})
  t.same(await bodyBytes(full.body), file.bytes)
  t.equal(delivery.cachedBytes, 1000, 'the whole file is now in memory')
  // From here on the disk is not needed: the cache answers.
  await rm(file.path)

  const cases: Array<[string, number, number]> = [['bytes=0-99', 0, 99], ['bytes=100-', 100, 999], ['bytes=-10', 990, 999], ['bytes=0-0', 0, 0], ['bytes=900-5000', 900, 999]]
  for (const [range, start, end] of cases) {
    const res = await delivery.deliver(RUN, file.output, { range })
    t.equal(res.statusCode, 206, range)
    t.ok(Buffer.isBuffer(res.body), 'served from memory')
    t.equal(res.headers['Content-Range'], `bytes ${start}-${end}/1000`)
    t.equal(res.headers['Content-Length'], end - start + 1)
    t.equal(res.headers['Content-Type'], 'image/png')
    t.equal(res.headers.ETag, `"${file.output.sha256}"`)
    t.same(await bodyBytes(res.body), file.bytes.subarray(start, end + 1))
  }
  const after = await delivery.deliver(RUN, file.output, {})
  t.equal(after.headers['Content-Length'], 1000, 'a 206 does not leave its length behind')
  t.notOk('Content-Range' in after.headers)
  t.same(await bodyBytes(after.body), file.bytes)
})

t.test('Range on a file that is not cached streams the slice from disk', async (t) => {
  const { delivery, file } = await setup(t)
  const res = await delivery.deliver(RUN, file.output, { range: 'bytes=123-456' })
  t.equal(res.statusCode, 206)
  t.ok(res.body instanceof Readable, 'a stream')
  t.equal(res.headers['Content-Range'], 'bytes 123-456/1000')
  t.equal(res.headers['Content-Length'], 334)
  t.same(await bodyBytes(res.body), file.bytes.subarray(123, 457))
  t.equal(delivery.cachedBytes, 0, 'a partial request does not fill the cache')
})

t.test('a file larger than maxCachedFileBytes streams, whole and in ranges', async (t) => {
  const { delivery, file } = await setup(t, { cacheBytes: 1024 * 1024, maxCachedFileBytes: 64 * 1024 }, 200_000)
  const res = await delivery.deliver(RUN, file.output, {})
  t.equal(res.statusCode, 200)
  t.ok(res.body instanceof Readable)
  t.equal(res.headers['Content-Length'], 200_000)
  t.same(await bodyBytes(res.body), file.bytes)
  t.equal(delivery.cachedBytes, 0, 'not kept in memory')

  const part = await delivery.deliver(RUN, file.output, { range: 'bytes=-70000' })
  t.equal(part.statusCode, 206)
  t.equal(part.headers['Content-Range'], 'bytes 130000-199999/200000')
  t.same(await bodyBytes(part.body), file.bytes.subarray(130_000))

  const exact = await setup(t, { cacheBytes: 1024 * 1024, maxCachedFileBytes: 1000 }, 1000)
  const atLimit = await exact.delivery.deliver(RUN, exact.file.output, {})
  t.ok(Buffer.isBuffer(atLimit.body), 'a file exactly at the limit is cached')
  t.equal(exact.delivery.cachedBytes, 1000)
})

t.test('an unsatisfiable Range is a RANGE_NOT_SATISFIABLE error (416) naming the range and the size', async (t) => {
  const { delivery, file } = await setup(t)
  for (const range of ['bytes=1000-', 'bytes=20-10', 'bytes=-0', 'bytes=abc', 'items=0-1']) {
    await t.rejects(delivery.deliver(RUN, file.output, { range }), { code: 'RANGE_NOT_SATISFIABLE', statusCode: 416, message: new RegExp(`${JSON.stringify(range).replace(/[-[\]{}()*+?.\\^$|]/g, '\\$&')}.*1000 bytes`) }, range)
  }
  const full = await delivery.deliver(RUN, file.output, {})
  t.notOk('Content-Range' in full.headers, 'a 416 does not leave its headers behind')
  t.equal(full.headers['Content-Length'], 1000)
})

t.test('several ranges answer 200 with the whole file', async (t) => {
  const { delivery, file } = await setup(t)
  const res = await delivery.deliver(RUN, file.output, { range: 'bytes=0-1,5-9' })
  t.equal(res.statusCode, 200)
  t.notOk('Content-Range' in res.headers)
  t.same(await bodyBytes(res.body), file.bytes)
})

t.test('If-Range: the current ETag or date gives 206, anything else the whole file', async (t) => {
  const { delivery, file } = await setup(t)
  const etag = `"${file.output.sha256}"`
  for (const ifRange of [etag, ` ${etag} `, LAST_MODIFIED]) {
    const res = await delivery.deliver(RUN, file.output, { range: 'bytes=10-19', ifRange })
    t.equal(res.statusCode, 206, ifRange)
    t.same(await bodyBytes(res.body), file.bytes.subarray(10, 20))
  }
  for (const ifRange of ['"old-version"', `W/${etag}`, 'Mon, 03 Mar 2025 05:06:07 GMT']) {
    const res = await delivery.deliver(RUN, file.output, { range: 'bytes=10-19', ifRange })
    t.equal(res.statusCode, 200, ifRange)
    t.equal(res.headers['Content-Length'], 1000)
    t.notOk('Content-Range' in res.headers)
    t.same(await bodyBytes(res.body), file.bytes)
  }
  // A stale If-Range also overrides an unsatisfiable range: the client gets the new file.
  const stale = await delivery.deliver(RUN, file.output, { range: 'bytes=5000-', ifRange: '"old-version"' })
  t.equal(stale.statusCode, 200)
})

t.test('the cache evicts the least recently used files and never exceeds its capacity', async (t) => {
  const dir = await tempRunsDir(t)
  const delivery = new MediaDelivery({ blobs: new LocalBlobStore(dir), cacheBytes: 250, maxCachedFileBytes: 200 })
  const files = await Promise.all(['a', 'b', 'c', 'd'].map(async (name, i) => await storedFile(dir, `output_${name}.png`, patterned(100, i + 1))))
  const [a, b, c, d] = files as [StoredFile, StoredFile, StoredFile, StoredFile]
  const seen: number[] = []
  const get = async (f: StoredFile): Promise<Buffer | null> => {
    const res = await delivery.deliver(RUN, f.output, {})
    seen.push(delivery.cachedBytes)
    return await bodyBytes(res.body)
  }
  t.same(await get(a), a.bytes)
  t.same(await get(b), b.bytes)
  t.equal(delivery.cachedBytes, 200)
  t.same(await get(a), a.bytes) // a is now more recent than b
  t.same(await get(c), c.bytes) // 300 > 250: b goes
  t.equal(delivery.cachedBytes, 200)

  // With the files gone from disk, only cached ones can still be served.
  await Promise.all(files.map(async (f) => { await rm(f.path) }))
  t.same(await get(a), a.bytes, 'a stayed')
  t.same(await get(c), c.bytes, 'c stayed')
  await t.rejects(delivery.deliver(RUN, b.output, {}), { code: 'BLOB_NOT_FOUND' }, 'b was evicted')

  await writeFile(d.path, d.bytes)
  t.same(await get(d), d.bytes) // a was used before c: a goes
  await t.rejects(delivery.deliver(RUN, a.output, {}), { code: 'BLOB_NOT_FOUND' }, 'a was evicted')
  t.same(await get(c), c.bytes)
  t.ok(seen.every((bytes) => bytes <= 250), `cachedBytes stayed within 250: ${seen.join(', ')}`)
})

t.test('evictRun forgets exactly the files of one run', async (t) => {
  const dir = await tempRunsDir(t)
  const delivery = new MediaDelivery({ blobs: new LocalBlobStore(dir), cacheBytes: 10_000, maxCachedFileBytes: 10_000 })
  const one = await storedFile(dir, 'one.png', patterned(100, 1))
  const two = await storedFile(dir, 'two.png', patterned(200, 2))
  const other = await storedFile(dir, 'other.png', patterned(400, 3), 'image/png', OTHER_RUN)
  await delivery.deliver(RUN, one.output, {})
  await delivery.deliver(RUN, two.output, {})
  await delivery.deliver(OTHER_RUN, other.output, {})
  t.equal(delivery.cachedBytes, 700)

  delivery.evictRun(RUN.slice(0, 10)) // a prefix of the id is not the run
  t.equal(delivery.cachedBytes, 700)
  delivery.evictRun(RUN)
  t.equal(delivery.cachedBytes, 400)

  await rm(one.path)
  await rm(other.path)
  await t.rejects(delivery.deliver(RUN, one.output, {}), { code: 'BLOB_NOT_FOUND' }, 'the deleted run is read from disk again')
  const kept = await delivery.deliver(OTHER_RUN, other.output, {})
  t.same(await bodyBytes(kept.body), other.bytes, 'the other run is still cached')
  delivery.evictRun('ffffffff-ffff-7fff-bfff-ffffffffffff') // unknown run: nothing happens
  t.equal(delivery.cachedBytes, 400)
})

t.test('cacheBytes 0 turns the cache off: every file streams', async (t) => {
  const { delivery, file } = await setup(t, { cacheBytes: 0, maxCachedFileBytes: 64 * 1024 }, 10)
  for (let i = 0; i < 2; i++) {
    const res = await delivery.deliver(RUN, file.output, {})
    t.equal(res.statusCode, 200)
    t.ok(res.body instanceof Readable, 'a stream, not a Buffer')
    t.same(await bodyBytes(res.body), file.bytes)
    t.equal(delivery.cachedBytes, 0)
  }
  const part = await delivery.deliver(RUN, file.output, { range: 'bytes=2-4' })
  t.ok(part.body instanceof Readable)
  t.same(await bodyBytes(part.body), file.bytes.subarray(2, 5))
})

t.test('concurrent first requests for one file read it once and share the bytes', async (t) => {
  const { delivery, file } = await setup(t)
  const [first, second] = await Promise.all([
    delivery.deliver(RUN, file.output, {}),
    delivery.deliver(RUN, file.output, {})
  ])
  t.ok(Buffer.isBuffer(first!.body))
  t.equal(first!.body, second!.body, 'the same Buffer, from one read')
  t.same(await bodyBytes(first!.body), file.bytes)
  t.equal(delivery.cachedBytes, 1000)
})

t.test('a failed read is reported and not remembered', async (t) => {
  const { delivery, file } = await setup(t)
  await rm(file.path)
  await t.rejects(delivery.deliver(RUN, file.output, {}), { code: 'BLOB_NOT_FOUND' })
  t.equal(delivery.cachedBytes, 0)
  await writeFile(file.path, file.bytes)
  const res = await delivery.deliver(RUN, file.output, {})
  t.same(await bodyBytes(res.body), file.bytes, 'the next request reads the file again')
})

t.test('an empty file: 200 with no bytes, and any Range is unsatisfiable', async (t) => {
  const dir = await tempRunsDir(t)
  const delivery = new MediaDelivery({ blobs: new LocalBlobStore(dir), cacheBytes: 1024, maxCachedFileBytes: 1024 })
  const empty = await storedFile(dir, 'empty.png', Buffer.alloc(0))
  const res = await delivery.deliver(RUN, empty.output, {})
  t.equal(res.statusCode, 200)
  t.equal(res.headers['Content-Length'], 0)
  t.same(await bodyBytes(res.body), Buffer.alloc(0))
  await t.rejects(delivery.deliver(RUN, empty.output, { range: 'bytes=0-' }), { code: 'RANGE_NOT_SATISFIABLE', message: /0 bytes/ })
})
