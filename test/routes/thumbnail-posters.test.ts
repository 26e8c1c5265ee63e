import t from 'tap'
import { fileTypeFromBuffer } from 'file-type'
import { imageSize } from 'image-size'
import { chmod, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import sharp from 'sharp'
import { findFfmpeg } from '../../services/media/ffmpeg.js'
import { fixtures } from '../fixtures/media.js'
import { build, storedView, tempRunsDir } from '../helper.js'

// Video, sound and 3D models get a picture too: a neutral poster, or a video's
// first frame where ffmpeg is on PATH. Whether it is, is read once at start,
// so each app here is built with the PATH of its case.

type App = Awaited<ReturnType<typeof build>>

const WEBP = 'image/webp,*/*;q=0.8'
const SYSTEM_PATH = process.env.PATH
const realFfmpeg = await findFfmpeg(SYSTEM_PATH)

/** The app, started with `path` as PATH (then PATH is restored). */
async function buildWithPath (t: Parameters<typeof build>[0], path: string, env: Record<string, string> = {}): Promise<{ app: App, runsDir: string }> {
  const runsDir = await tempRunsDir(t)
  process.env.PATH = path
  try {
    return { app: await build(t, { RUNS_DIR: runsDir, ...env }), runsDir }
  } finally {
    process.env.PATH = SYSTEM_PATH
  }
}

/** A folder holding only an executable `ffmpeg` with this shell script as body. */
async function fakeFfmpeg (t: Parameters<typeof build>[0], script: string): Promise<string> {
  const dir = await tempRunsDir(t)
  await writeFile(join(dir, 'ffmpeg'), `#!/bin/sh\n${script}\n`)
  await chmod(join(dir, 'ffmpeg'), 0o755)
  return dir
}

async function storeAll (t: Parameters<typeof build>[0], app: App, files: string[]): Promise<{ runId: string, outputs: Array<{ sha256: string }> }> {
  const runId = (await app.inject({ method: 'POST', url: '/api/runs', payload: { schema: 'dada', execution_mode: 'eco', input_text: 'Eine Blume' } })).json().run_id
  const outputs = []
  for (const file of files) {
    const res = await app.inject({ method: 'POST', url: `/api/runs/${runId}/media`, payload: { source: 'data', data: (await readFile(file)).toString('base64'), config: 'test' } })
    t.equal(res.statusCode, 201)
    outputs.push(res.json())
  }
  return { runId, outputs }
}

/** How far the picture is from one flat colour: a poster is nearly flat, a test-pattern frame is not. */
async function colourfulness (bytes: Buffer): Promise<number> {
  const { channels } = await sharp(bytes).stats()
  return Math.max(...channels.slice(0, 3).map((c) => c.stdev))
}

t.test('without ffmpeg: video, sound and 3D get a neutral poster, in the video\'s proportions', async (t) => {
  const { app, runsDir } = await buildWithPath(t, await tempRunsDir(t))
  t.equal(app.thumbnails.ffmpeg, null)
  const { runId, outputs } = await storeAll(t, app, [fixtures.mp4.file, fixtures.rotatedMp4.file, fixtures.wav.file, fixtures.glb.file])

  const video = await app.inject({ url: `/api/media/video/${runId}/0?width=160`, headers: { accept: WEBP } })
  t.equal(video.statusCode, 200)
  t.same(await fileTypeFromBuffer(video.rawPayload), { ext: 'webp', mime: 'image/webp' })
  t.match(imageSize(video.rawPayload), { width: 96, height: 64 }, 'the video is 96 × 64: no wider than it')
  t.equal(video.headers.etag, `"${outputs[0]!.sha256}.poster.160.webp"`)
  t.equal(video.headers.vary, 'Accept')
  t.equal(video.headers['content-disposition'], 'inline; filename="output_video.160.webp"')
  t.ok(await colourfulness(video.rawPayload) < 40, 'a quiet picture')

  const rotated = await app.inject({ url: `/api/media/video/${runId}?width=640` })
  t.same(await fileTypeFromBuffer(rotated.rawPayload), { ext: 'jpg', mime: 'image/jpeg' })
  t.match(imageSize(rotated.rawPayload), { width: 64, height: 96 }, 'shown upright: 64 × 96')

  const audio = await app.inject({ url: `/api/media/audio/${runId}?width=320`, headers: { accept: WEBP } })
  t.equal(audio.statusCode, 200)
  t.match(imageSize(audio.rawPayload), { width: 320, height: 320 })
  t.equal(audio.headers['content-type'], 'image/webp')
  const model = await app.inject({ url: `/api/media/model3d/${runId}/0?width=160` })
  t.equal(model.statusCode, 200)
  t.match(imageSize(model.rawPayload), { width: 160, height: 160 })
  t.notSame(audio.rawPayload, model.rawPayload, 'each medium has its own sign')

  const notModified = await app.inject({ url: `/api/media/audio/${runId}?width=320`, headers: { accept: WEBP, 'if-none-match': audio.headers.etag as string } })
  t.equal(notModified.statusCode, 304)
  t.same(await storedView(runsDir).list(runId), ['input_text.txt', 'metadata.json', 'output_audio.wav', 'output_model3d.glb', 'output_video.mp4', 'output_video_2.mp4'], 'nothing added to the run')
  t.equal((await readdir(join(runsDir, '.thumbnails', runId))).length, 4)
  t.equal((await app.inject({ url: `/api/media/audio/${runId}?width=100` })).json().code, 'INVALID_WIDTH')
})

t.test('with an ffmpeg on PATH, a video shows its first frame; one ffmpeg cannot read keeps its poster', async (t) => {
  // A stand-in that answers like ffmpeg and "extracts" a known picture, logging each call.
  const calls = join(await tempRunsDir(t), 'calls')
  const dir = await fakeFfmpeg(t, [
    `echo "$@" >> ${calls}`,
    'if [ "$1" = "-version" ]; then echo "ffmpeg version 9.9-fake"; exit 0; fi',
    'while [ $# -gt 0 ]; do if [ "$1" = "-i" ]; then input="$2"; fi; shift; done',
    // It cannot read WebM (its header names the DocType "webm").
    'if grep -q webm "$input"; then echo "Invalid data found when processing input" >&2; exit 1; fi',
    `cat ${fixtures.png.file}`
  ].join('\n'))
  const { app, runsDir } = await buildWithPath(t, `relative/bin:${dir}:/nonexistent`)
  t.equal(app.thumbnails.ffmpeg, join(dir, 'ffmpeg'))
  const { runId, outputs } = await storeAll(t, app, [fixtures.mp4.file, fixtures.webm.file, fixtures.mov.file])

  const frame = await app.inject({ url: `/api/media/video/${runId}/0?width=160`, headers: { accept: WEBP } })
  t.equal(frame.statusCode, 200)
  t.equal(frame.headers.etag, `"${outputs[0]!.sha256}.frame.160.webp"`)
  t.match(imageSize(frame.rawPayload), { width: 64, height: 48 }, 'the picture ffmpeg gave, no wider than it')
  const args = (await readFile(calls, 'utf8')).trim().split('\n')[1]!
  t.match(args, /^-nostdin .* -i \S+\/\.thumbnails\/\.tmp-[0-9a-f-]+ -frames:v 1 -vf scale=w=min\(1280\\,iw\):h=-1 -f image2pipe -c:v png pipe:1$/)
  t.same((await readdir(join(runsDir, '.thumbnails', runId))).sort(), [`${outputs[0]!.sha256}.frame.160.webp`, `${outputs[0]!.sha256}.frame.png`].sort())
  t.same((await readdir(join(runsDir, '.thumbnails'))), [runId], 'the copy ffmpeg read is gone')

  const wider = await app.inject({ url: `/api/media/video/${runId}/0?width=320` })
  t.equal(wider.statusCode, 200)
  t.equal((await readFile(calls, 'utf8')).trim().split('\n').length, 2, 'another width of the same video reuses the frame')
  await rm(join(runsDir, '.thumbnails', runId, `${outputs[0]!.sha256}.frame.png`))
  const cached = await app.inject({ url: `/api/media/video/${runId}/0?width=160`, headers: { accept: WEBP } })
  t.same(cached.rawPayload, frame.rawPayload, 'a cached width needs no frame')
  t.equal((await readFile(calls, 'utf8')).trim().split('\n').length, 2)

  const unreadable = await app.inject({ url: `/api/media/video/${runId}/1?width=160`, headers: { accept: WEBP } })
  t.equal(unreadable.statusCode, 200)
  t.equal(unreadable.headers.etag, `"${outputs[1]!.sha256}.poster.160.webp"`)
  t.match(imageSize(unreadable.rawPayload), { width: 64, height: 48 })
  t.ok(await colourfulness(unreadable.rawPayload) < 40, 'the neutral poster')
  const again = await app.inject({ url: `/api/media/video/${runId}/1?width=160`, headers: { accept: WEBP, 'if-none-match': unreadable.headers.etag as string } })
  t.equal(again.statusCode, 304, 'the poster\'s ETag holds: ffmpeg is not asked again')
  t.equal((await readFile(calls, 'utf8')).trim().split('\n').length, 3)

  // Stored bytes that are no longer the ones the metadata names: ffmpeg never sees them, the video keeps its poster.
  const mov = await readFile(fixtures.mov.file)
  mov[mov.length - 10] = mov[mov.length - 10]! ^ 0xff
  await storedView(runsDir).write(runId, 'output_video_3.mov', mov)
  const damaged = await app.inject({ url: `/api/media/video/${runId}/2?width=160` })
  t.equal(damaged.statusCode, 200)
  t.equal(damaged.headers.etag, `"${outputs[2]!.sha256}.poster.160.jpg"`)
  t.equal((await readFile(calls, 'utf8')).trim().split('\n').length, 3)
})

t.test('the real ffmpeg, where it is installed: the first frame of real videos, upright', { skip: realFfmpeg === null ? 'no ffmpeg on PATH' : false }, async (t) => {
  const { app } = await buildWithPath(t, SYSTEM_PATH ?? '')
  t.equal(app.thumbnails.ffmpeg, realFfmpeg)
  const { runId, outputs } = await storeAll(t, app, [fixtures.mp4.file, fixtures.rotatedMp4.file, fixtures.webm.file])
  for (const [index, size] of [[0, { width: 96, height: 64 }], [1, { width: 64, height: 96 }], [2, { width: 64, height: 48 }]] as const) {
    const res = await app.inject({ url: `/api/media/video/${runId}/${index}?width=160`, headers: { accept: WEBP } })
    t.equal(res.statusCode, 200)
    t.equal(res.headers.etag, `"${outputs[index]!.sha256}.frame.160.webp"`)
    t.match(imageSize(res.rawPayload), size)
    t.ok(await colourfulness(res.rawPayload) > 40, 'the test pattern\'s colour bars, not a poster')
  }
})
