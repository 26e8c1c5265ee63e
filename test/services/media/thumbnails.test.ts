import t from 'tap'
import { imageSize } from 'image-size'
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { findFfmpeg, firstFrame } from '../../../services/media/ffmpeg.js'
import { RenderError, resizeImage } from '../../../services/media/thumbnail-render.js'
import { thumbnailFormatFor, Thumbnails } from '../../../services/media/thumbnails.js'
import { LocalBlobStore } from '../../../services/storage/blob/local.js'
import type { MediaOutput } from '../../../schemas/run.js'
import { fixtures } from '../../fixtures/media.js'
import { tempRunsDir } from '../../helper.js'

const RUN_ID = '0193f1e2-7c4a-7b9e-8d2f-4c1a2b3c4d5e'

/** A folder holding one executable `ffmpeg` with this shell script as body. */
async function program (t: Parameters<typeof tempRunsDir>[0], script: string): Promise<string> {
  const dir = await tempRunsDir(t)
  await writeFile(join(dir, 'ffmpeg'), `#!/bin/sh\n${script}\n`)
  await chmod(join(dir, 'ffmpeg'), 0o755)
  return dir
}

function output (fields: Partial<MediaOutput>): MediaOutput {
  return {
    index: 0, type: 'image', filename: 'output_image.png', backend: 'test', config: 'test', file_size_bytes: 1, format: 'png', mime_type: 'image/png',
    width: 64, height: 48, duration_seconds: null, sha256: 'a'.repeat(64), created_at: new Date(0).toISOString(), source: { kind: 'test' }, ...fields
  }
}

t.test('WebP only for a client that names it', async (t) => {
  t.equal(thumbnailFormatFor(undefined), 'jpeg')
  t.equal(thumbnailFormatFor('*/*'), 'jpeg', 'a script\'s */* promises nothing about WebP')
  t.equal(thumbnailFormatFor('image/*'), 'jpeg')
  t.equal(thumbnailFormatFor('image/avif,image/webp,image/apng,*/*;q=0.8'), 'webp')
  t.equal(thumbnailFormatFor('IMAGE/WEBP; q=0.5'), 'webp')
  t.equal(thumbnailFormatFor('image/webp;q=0'), 'jpeg')
  t.equal(thumbnailFormatFor('image/webp;q=0.0, image/jpeg'), 'jpeg')
})

t.test('sharp decodes no picture larger than the pixel limit', async (t) => {
  const png = await readFile(fixtures.png.file) // 64 × 48 = 3072 pixels
  t.match(imageSize(await resizeImage(png, 160, 'webp', 3072)), { width: 64, height: 48 })
  await t.rejects(resizeImage(png, 160, 'webp', 3071), RenderError)
  await t.rejects(resizeImage(png, 160, 'jpeg', 3071), /pixel limit/)
})

t.test('ffmpeg is the first executable `ffmpeg` on PATH that answers as ffmpeg', async (t) => {
  t.equal(await findFfmpeg(undefined), null)
  t.equal(await findFfmpeg(''), null)
  const fake = await program(t, 'echo "ffmpeg version 9.9-fake Copyright"')
  t.equal(await findFfmpeg(`:relative:./bin:${fake}`), join(fake, 'ffmpeg'), 'empty and relative entries (the working directory) are never searched')

  const notExecutable = await tempRunsDir(t)
  await writeFile(join(notExecutable, 'ffmpeg'), '#!/bin/sh\necho "ffmpeg version 1"\n')
  const folder = await tempRunsDir(t)
  await mkdir(join(folder, 'ffmpeg'))
  t.equal(await findFfmpeg(`${notExecutable}:${folder}:${fake}`), join(fake, 'ffmpeg'), 'a file without x and a folder are passed over')

  const impostor = await program(t, 'echo "not what you think"')
  t.equal(await findFfmpeg(`${impostor}:${fake}`), null, 'the ffmpeg PATH finds first is the one that would run: when it is none, there is none')
  const broken = await program(t, 'exit 3')
  t.equal(await findFfmpeg(broken), null)
})

t.test('firstFrame rejects what gives no frame', async (t) => {
  const silent = join(await program(t, 'exit 0'), 'ffmpeg')
  await t.rejects(firstFrame(silent, fixtures.mp4.file, 1280), /ffmpeg gave no PNG/)
  const garbage = join(await program(t, 'echo "frame?"'), 'ffmpeg')
  await t.rejects(firstFrame(garbage, fixtures.mp4.file, 1280), /ffmpeg gave no PNG/)
  const mute = join(await program(t, 'exit 1'), 'ffmpeg')
  await t.rejects(firstFrame(mute, fixtures.mp4.file, 1280), /^ffmpeg failed: Command failed/)
  const talking = join(await program(t, 'echo "moov atom not found" >&2; echo "more" >&2; exit 1'), 'ffmpeg')
  await t.rejects(firstFrame(talking, fixtures.mp4.file, 1280), { message: 'ffmpeg failed: moov atom not found' })
})

t.test('the real ffmpeg takes a first frame no wider than asked', { skip: await findFfmpeg(process.env.PATH) === null ? 'no ffmpeg on PATH' : false }, async (t) => {
  const ffmpeg = (await findFfmpeg(process.env.PATH))!
  t.match(imageSize(await firstFrame(ffmpeg, fixtures.mp4.file, 1280)), { type: 'png', width: 96, height: 64 })
  t.match(imageSize(await firstFrame(ffmpeg, fixtures.mp4.file, 48)), { width: 48, height: 32 })
  await t.rejects(firstFrame(ffmpeg, fixtures.wav.file, 1280), /ffmpeg/)
})

t.test('what the service refuses, and what it does without a cache folder', async (t) => {
  const root = await tempRunsDir(t)
  const cacheDir = join(root, '.thumbnails')
  const thumbnails = new Thumbnails({ blobs: new LocalBlobStore(root), cacheDir, maxImagePixels: 1000, ffmpeg: null, maxWidth: 1280, concurrency: 1 })

  t.same(await thumbnails.sweep(async () => true), [], 'no cache folder yet: nothing to sweep')
  const file = join(root, 'a-file')
  await writeFile(file, 'x')
  const misplaced = new Thumbnails({ blobs: new LocalBlobStore(root), cacheDir: file, maxImagePixels: 1000, ffmpeg: null, maxWidth: 1280, concurrency: 1 })
  await t.rejects(misplaced.removeRun(RUN_ID), { code: 'ENOTDIR' }, 'a cache that is no folder is reported, not taken for empty')
  await thumbnails.removeRun(RUN_ID)
  await thumbnails.removeRun('../etc')
  await t.rejects(thumbnails.get('../etc', output({}), 160, 'webp'), TypeError)
  await t.rejects(thumbnails.get(RUN_ID, output({ sha256: '../../x' }), 160, 'webp'), { code: 'THUMBNAIL_FAILED', statusCode: 422, message: /no valid sha256/ })
  await t.rejects(thumbnails.get(RUN_ID, output({ width: 40, height: 30 }), 160, 'webp'), { code: 'IMAGE_TOO_LARGE', statusCode: 422, message: 'the image is 40 × 30 pixels, more than the limit of 1000 pixels' })
  await t.rejects(thumbnails.get(RUN_ID, output({ width: 20, height: 20 }), 160, 'webp'), { code: 'THUMBNAIL_FAILED', message: /the stored file cannot be read$/ })

  // Posters need no original: proportions from the metadata, else 16:9 for a video and square for the rest.
  // One at a time (concurrency 1): the second waits for the first.
  const [video, audio] = await Promise.all([
    thumbnails.get(RUN_ID, output({ type: 'video', filename: 'output_video.mp4', width: null, height: null }), 320, 'jpeg'),
    thumbnails.get(RUN_ID, output({ type: 'audio', filename: 'output_audio.wav', width: null, height: null }), 160, 'webp')
  ])
  t.match(imageSize(video.bytes), { type: 'jpg', width: 320, height: 180 })
  t.equal(video.etag, `"${'a'.repeat(64)}.poster.320.jpg"`)
  t.match(imageSize(audio.bytes), { type: 'webp', width: 160, height: 160 })
  t.equal(thumbnails.made, 2)
})
