import t from 'tap'
import { parseBuffer } from 'music-metadata'
import { PNG } from 'pngjs'
import { BuiltinBackend } from '../../../../services/backends/builtin/backend.js'
import type { GenerationRequest, MediaItem } from '../../../../services/backends/types.js'
import { BackendFailedError } from '../../../../services/errors.js'

function request (overrides: Partial<GenerationRequest> = {}): GenerationRequest {
  return { run_id: '0193f1e2-7c4a-7b9e-8d2f-4c1a2b3c4d5e', prompt: 'a blue dragon above the sea', seed: 42, width: 96, height: 64, params: {}, ...overrides }
}

async function collect (backend: BuiltinBackend, req: GenerationRequest): Promise<MediaItem[]> {
  const items: MediaItem[] = []
  for await (const item of backend.generate(req)) items.push(item)
  return items
}

async function one (backend: BuiltinBackend, req: GenerationRequest): Promise<{ item: MediaItem, bytes: Buffer }> {
  const items = await collect(backend, req)
  if (items.length !== 1) throw new Error(`expected one item, got ${items.length}`)
  const item = items[0] as MediaItem
  if (!Buffer.isBuffer(item.body)) throw new Error('expected a Buffer')
  return { item, bytes: item.body }
}

/** mean absolute difference per channel, 0–255 */
function pictureDistance (a: PNG, b: PNG): number {
  let sum = 0
  for (let i = 0; i < a.data.length; i++) if (i % 4 !== 3) sum += Math.abs((a.data[i] ?? 0) - (b.data[i] ?? 0))
  return sum / (a.data.length * 0.75)
}

interface Wav { format: number, channels: number, sampleRate: number, byteRate: number, bits: number, samples: Int16Array }

function parseWav (bytes: Buffer): Wav {
  if (bytes.toString('ascii', 0, 4) !== 'RIFF' || bytes.toString('ascii', 8, 12) !== 'WAVE') throw new Error('not a RIFF WAVE file')
  if (bytes.readUInt32LE(4) !== bytes.length - 8) throw new Error('RIFF size does not match the file')
  if (bytes.toString('ascii', 12, 16) !== 'fmt ' || bytes.toString('ascii', 36, 40) !== 'data') throw new Error('unexpected chunk layout')
  const dataBytes = bytes.readUInt32LE(40)
  if (dataBytes !== bytes.length - 44) throw new Error('data size does not match the file')
  const samples = new Int16Array(dataBytes / 2)
  for (let i = 0; i < samples.length; i++) samples[i] = bytes.readInt16LE(44 + i * 2)
  return { format: bytes.readUInt16LE(20), channels: bytes.readUInt16LE(22), sampleRate: bytes.readUInt32LE(24), byteRate: bytes.readUInt32LE(28), bits: bytes.readUInt16LE(34), samples }
}

t.test('is always available under the name builtin', async (t) => {
  const backend = new BuiltinBackend()
  t.equal(backend.name, 'builtin')
  t.equal(backend.unavailableReason(), null)
})

t.test('an image is a valid PNG of the requested size, with its source', async (t) => {
  const { item, bytes } = await one(new BuiltinBackend(), request({ width: 120, height: 80 }))
  t.same(item.source, { kind: 'builtin', model: 'procedural-v1' })
  t.equal(item.media_type, 'image')
  const png = PNG.sync.read(bytes)
  t.equal(png.width, 120)
  t.equal(png.height, 80)
  const colours = new Set<number>()
  for (let i = 0; i < png.data.length; i += 4) colours.add(png.data.readUInt32BE(i))
  t.ok(colours.size > 100, `a picture, not a flat fill (${colours.size} colours)`)
})

t.test('image is the default; params.media_type image is the same', async (t) => {
  const backend = new BuiltinBackend()
  const implicit = await one(backend, request())
  const explicit = await one(backend, request({ params: { media_type: 'image' } }))
  t.ok(implicit.bytes.equals(explicit.bytes))
})

t.test('same prompt and seed give identical bytes; another seed or prompt a visibly different picture', async (t) => {
  const backend = new BuiltinBackend()
  const first = await one(backend, request())
  const again = await one(new BuiltinBackend(), request())
  t.ok(first.bytes.equals(again.bytes), 'deterministic')
  const otherSeed = await one(backend, request({ seed: 43 }))
  const otherPrompt = await one(backend, request({ prompt: 'a quiet night in the forest' }))
  const base = PNG.sync.read(first.bytes)
  t.ok(pictureDistance(base, PNG.sync.read(otherSeed.bytes)) > 15, 'another seed looks different')
  t.ok(pictureDistance(base, PNG.sync.read(otherPrompt.bytes)) > 15, 'another prompt looks different')
})

t.test('big sizes are scaled down to the maximum with their shape kept; bad sizes fall back to a default', async (t) => {
  const backend = new BuiltinBackend({ maxSide: 200 })
  const size = async (width: number, height: number): Promise<[number, number]> => {
    const png = PNG.sync.read((await one(backend, request({ width, height }))).bytes)
    return [png.width, png.height]
  }
  t.same(await size(800, 400), [200, 100])
  t.same(await size(300, 3000), [20, 200])
  t.same(await size(5000, 30), [200, 8], 'never thinner than 8 pixels')
  t.same(await size(1, 2), [8, 8])
  t.same(await size(150, 120), [150, 120], 'small sizes are kept')
  t.same(await size(Number.NaN, 0), [200, 200])
  const unlimited = PNG.sync.read((await one(new BuiltinBackend(), request({ width: -5, height: 64 }))).bytes)
  t.same([unlimited.width, unlimited.height], [512, 64])
})

t.test('an empty prompt still makes a picture and a tune', async (t) => {
  const backend = new BuiltinBackend()
  t.equal(PNG.sync.read((await one(backend, request({ prompt: '' }))).bytes).width, 96)
  t.equal(parseWav((await one(backend, request({ prompt: '  ', params: { media_type: 'audio', duration_seconds: 1 } }))).bytes).samples.length, 22050)
})

t.test('audio is a 16-bit mono 22050 Hz PCM WAV of the default length, with sound in it', async (t) => {
  const { item, bytes } = await one(new BuiltinBackend(), request({ params: { media_type: 'audio' } }))
  t.equal(item.media_type, 'audio')
  t.same(item.source, { kind: 'builtin', model: 'procedural-v1' })
  const wav = parseWav(bytes)
  t.same({ format: wav.format, channels: wav.channels, sampleRate: wav.sampleRate, byteRate: wav.byteRate, bits: wav.bits },
    { format: 1, channels: 1, sampleRate: 22050, byteRate: 44100, bits: 16 })
  t.equal(wav.samples.length, 4 * 22050)
  let peak = 0
  for (const sample of wav.samples) peak = Math.max(peak, Math.abs(sample))
  t.ok(peak > 20000 && peak < 32767, `loud but not clipped (peak ${peak})`)
  t.equal(wav.samples[wav.samples.length - 1], 0, 'fades out to silence')

  const metadata = await parseBuffer(bytes, { mimeType: 'audio/wav' })
  t.equal(metadata.format.container, 'WAVE')
  t.equal(metadata.format.sampleRate, 22050)
  t.equal(metadata.format.numberOfChannels, 1)
  t.equal(metadata.format.bitsPerSample, 16)
  t.equal(metadata.format.duration, 4)
})

t.test('params.duration_seconds sets the length, within limits', async (t) => {
  const backend = new BuiltinBackend({ maxDurationSeconds: 3 })
  const length = async (duration: unknown): Promise<number> =>
    parseWav((await one(backend, request({ params: { media_type: 'audio', duration_seconds: duration } }))).bytes).samples.length
  t.equal(await length(2), 44100)
  t.equal(await length(60), 3 * 22050)
  t.equal(await length(0.01), 11025)
  t.equal(await length('long'), 3 * 22050, 'a non-number falls back to the default, within the limit')
})

t.test('melodies are deterministic and depend on prompt and seed', async (t) => {
  const backend = new BuiltinBackend()
  const tune = async (prompt: string, seed: number): Promise<Buffer> =>
    (await one(backend, request({ prompt, seed, params: { media_type: 'audio', duration_seconds: 2 } }))).bytes
  const first = await tune('a happy song about the sun', 1)
  t.ok(first.equals(await tune('a happy song about the sun', 1)))
  t.notOk(first.equals(await tune('a happy song about the sun', 2)))
  t.notOk(first.equals(await tune('the rain falls on grey roofs', 1)))
})

t.test('other media types are refused', async (t) => {
  const err = await collect(new BuiltinBackend(), request({ params: { media_type: 'video' } })).catch((e: unknown) => e)
  t.ok(err instanceof BackendFailedError)
  t.match(err, { code: 'BACKEND_FAILED', statusCode: 502, message: /image or audio, not video/ })
})

t.test('an aborted request makes nothing', async (t) => {
  const controller = new AbortController()
  controller.abort(new Error('run canceled'))
  await t.rejects(collect(new BuiltinBackend(), request({ signal: controller.signal })), { message: 'run canceled' })
})

t.test('validateParams: media_type image or audio, duration_seconds a positive number, nothing else', async (t) => {
  const backend = new BuiltinBackend()
  for (const params of [{}, { media_type: 'image' }, { media_type: 'audio', duration_seconds: 6 }, { media_type: 'audio', duration_seconds: 0.5 }]) {
    t.doesNotThrow(() => backend.validateParams(params), JSON.stringify(params))
  }
  t.throws(() => backend.validateParams({ media_type: 'video' }), { message: 'params.media_type must be one of "image", "audio" (got "video")' })
  t.throws(() => backend.validateParams({ media_type: 'audio', duration_seconds: '6' }), { message: 'params.duration_seconds must be a number above 0 (got "6")' })
  t.throws(() => backend.validateParams({ duration_seconds: 0 }), /params\.duration_seconds must be a number above 0 \(got 0\)/)
  t.throws(() => backend.validateParams({ media_type: 'audio', duration: 6 }), { message: 'params.duration is not a parameter of the builtin backend (it takes media_type, duration_seconds)' })
})
