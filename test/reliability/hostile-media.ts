import { readFileSync } from 'node:fs'
import { deflateSync } from 'node:zlib'
import { Readable } from 'node:stream'
import type { InjectOptions } from 'fastify'
import { multipartBody } from '../helper.js'
import { fixtures } from '../fixtures/media.js'
import { jsonOf, type Answer, type HostileCase } from './hostile-case.js'

// Media that lies about itself, is cut short or is too large, sent as an
// upload and as a data URI; forms that are broken.

export interface MediaContext {
  /** the run media requests go to */
  runId: string
  maxUploadBytes: number
  /** bytes of the streamed oversize upload */
  floodBytes: number
}

const bytes = (fixture: { file: string }): Buffer => readFileSync(fixture.file)
const PNG = bytes(fixtures.png)
const JPEG = bytes(fixtures.jpeg)
const PNG_SIGNATURE = PNG.subarray(0, 8)

/** A PNG whose header claims `side`×`side` pixels, with one tiny IDAT and an IEND: a decompression bomb's promise. */
function pngClaiming (side: number): Buffer {
  const chunk = (type: string, data: Buffer): Buffer => {
    const length = Buffer.alloc(4)
    length.writeUInt32BE(data.length)
    return Buffer.concat([length, Buffer.from(type, 'latin1'), data, Buffer.alloc(4)])
  }
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(side, 0)
  ihdr.writeUInt32BE(side, 4)
  ihdr.set([8, 2, 0, 0, 0], 8)
  return Buffer.concat([PNG_SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.alloc(16))), chunk('IEND', Buffer.alloc(0))])
}

/** Files that are not what they claim, or not whole. */
const LIARS: Record<string, { file: Buffer, filename: string, contentType: string }> = {
  'PNG magic, then junk': { file: Buffer.concat([PNG_SIGNATURE, Buffer.alloc(300, 0x41)]), filename: 'drawing.png', contentType: 'image/png' },
  'PNG magic and IHDR, then junk': { file: Buffer.concat([PNG.subarray(0, 33), Buffer.alloc(300, 0x41)]), filename: 'drawing.png', contentType: 'image/png' },
  'text claiming image/png': { file: Buffer.from('just some text, honestly a picture\n'), filename: 'drawing.png', contentType: 'image/png' },
  'HTML claiming image/png': { file: Buffer.from('<html><script>alert(document.cookie)</script></html>'), filename: 'drawing.png', contentType: 'image/png' },
  'SVG with a script': { file: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'), filename: 'drawing.svg', contentType: 'image/svg+xml' },
  'a GIF header before PHP': { file: Buffer.from('GIF89a<?php system($_GET["c"]); ?>'), filename: 'drawing.gif', contentType: 'image/gif' },
  'a ZIP claiming image/png': { file: Buffer.from('504b0304140000000000000000000000000000000000000000000000', 'hex'), filename: 'drawing.png', contentType: 'image/png' },
  'an ELF executable claiming image/png': { file: Buffer.concat([Buffer.from('7f454c46020101', 'hex'), Buffer.alloc(200)]), filename: 'drawing.png', contentType: 'image/png' },
  'a PDF claiming image/png': { file: Buffer.from('%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n'), filename: 'drawing.png', contentType: 'image/png' },
  'an empty file': { file: Buffer.alloc(0), filename: 'drawing.png', contentType: 'image/png' },
  'a RIFF WAVE header, then junk': { file: Buffer.concat([Buffer.from('RIFF\x24\x00\x00\x00WAVEjunk', 'latin1'), Buffer.alloc(100, 0x41)]), filename: 'sound.wav', contentType: 'audio/wav' },
  'an MP4 ftyp box, then junk': { file: Buffer.concat([Buffer.from([0, 0, 0, 0x1c]), Buffer.from('ftypisom\0\0\x02\0isomiso2mp41', 'latin1'), Buffer.alloc(200, 0x41)]), filename: 'clip.mp4', contentType: 'video/mp4' },
  'a GLB header without chunks': { file: Buffer.concat([Buffer.from('glTF', 'latin1'), Buffer.from([2, 0, 0, 0, 12, 0, 0, 0])]), filename: 'model.glb', contentType: 'model/gltf-binary' },
  'JSON that is not a glTF model': { file: Buffer.from('{"asset":{},"__proto__":{"polluted":"yes"}}'), filename: 'model.gltf', contentType: 'model/gltf+json' },
  'a PNG cut to 60 bytes': { file: PNG.subarray(0, 60), filename: 'drawing.png', contentType: 'image/png' },
  'a PNG cut in half': { file: PNG.subarray(0, PNG.length >> 1), filename: 'drawing.png', contentType: 'image/png' },
  'a JPEG cut in half': { file: JPEG.subarray(0, JPEG.length >> 1), filename: 'drawing.jpg', contentType: 'image/jpeg' },
  'a PNG claiming 100000x100000 pixels': { file: pngClaiming(100_000), filename: 'drawing.png', contentType: 'image/png' }
}

export function mediaCases (ctx: MediaContext): HostileCase[] {
  const url = `/api/runs/${ctx.runId}/media`
  const cases: HostileCase[] = []
  const form = (parts: Parameters<typeof multipartBody>[0]): InjectOptions => {
    const { body, contentType } = multipartBody(parts)
    return { method: 'POST', url, headers: { 'content-type': contentType }, payload: body }
  }
  const dataUri = (data: string, extra: Record<string, unknown> = {}): InjectOptions =>
    ({ method: 'POST', url, headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ source: 'data', data, config: 'upload', ...extra }) })

  for (const [name, liar] of Object.entries(LIARS)) {
    cases.push({ name: `upload: ${name}`, send: { inject: form([{ name: 'config', value: 'upload' }, { name: 'file', value: liar.file, filename: liar.filename, contentType: liar.contentType }]) } })
    cases.push({ name: `data URI: ${name}`, send: { inject: dataUri(`data:${liar.contentType};base64,${liar.file.toString('base64')}`) } })
  }

  // Names and claims that lie about a good file: stored as what the bytes are, under a name of our making.
  const storedAs = (format: string) => (answer: Answer): string | null => {
    const output = jsonOf(answer)
    if (output?.format !== format) return `stored as ${String(output?.format)}, not ${format}`
    return /^output_image(_\d+)?\.[a-z]+$/.test(String(output.filename)) ? null : `stored under the name ${String(output.filename)}`
  }
  const goodFiles: Record<string, { file: Buffer, filename: string, contentType: string, format: string }> = {
    'a JPEG named .png, claiming image/png': { file: JPEG, filename: 'drawing.png', contentType: 'image/png', format: 'jpg' },
    'a PNG named to climb out of the folder': { file: PNG, filename: '../../../../../tmp/pwned.png', contentType: 'image/png', format: 'png' },
    'a PNG named with a NUL': { file: PNG, filename: 'drawing.png\u0000.exe', contentType: 'image/png', format: 'png' },
    'a PNG named with CRLF and a header': { file: PNG, filename: 'drawing.png\r\nX-Injected: 1', contentType: 'image/png', format: 'png' },
    'a PNG named with 1000 characters': { file: PNG, filename: 'a'.repeat(1000) + '.png', contentType: 'image/png', format: 'png' },
    'a PNG named as the metadata': { file: PNG, filename: 'metadata.json', contentType: 'application/json', format: 'png' },
    'a PNG with a ZIP appended': { file: Buffer.concat([PNG, LIARS['a ZIP claiming image/png']!.file]), filename: 'drawing.png', contentType: 'image/png', format: 'png' }
  }
  for (const [name, good] of Object.entries(goodFiles)) {
    cases.push({
      name: `upload: ${name}`,
      send: { inject: form([{ name: 'config', value: 'upload' }, { name: 'file', value: good.file, filename: good.filename, contentType: good.contentType }]) },
      accept: storedAs(good.format)
    })
  }
  cases.push({ name: 'data URI: a JPEG claiming image/png', send: { inject: dataUri(`data:image/png;base64,${JPEG.toString('base64')}`) }, accept: storedAs('jpg') })
  cases.push({ name: 'data URI: a PNG claiming a MIME type of 10000 characters', send: { inject: dataUri(`data:image/${'x'.repeat(10000)};base64,${PNG.toString('base64')}`) }, accept: storedAs('png') })

  // Broken forms.
  const png = { name: 'file', value: PNG, filename: 'drawing.png', contentType: 'image/png' }
  const config = { name: 'config', value: 'upload' }
  for (const [name, parts] of Object.entries({
    'two files': [config, png, { ...png, filename: 'second.png' }],
    'the file in another field': [config, { ...png, name: 'avatar' }],
    'no file': [config],
    'no config': [png],
    'a config climbing out': [{ name: 'config', value: '../../../tmp/pwned' }, png],
    'an empty config': [{ name: 'config', value: '' }, png],
    'a config of 101 characters': [{ name: 'config', value: 'c'.repeat(101) }, png],
    'a backend climbing out': [config, { name: 'backend', value: '../x' }, png],
    'a MIME type as media type': [config, { name: 'media_type', value: 'image/png' }, png],
    'a PNG declared as audio': [config, { name: 'media_type', value: 'audio' }, png],
    'a field of 100 KiB': [config, { name: 'backend', value: 'b'.repeat(100 * 1024) }, png],
    'eleven fields': [config, ...Array.from({ length: 10 }, (_, i) => ({ name: `extra${i}`, value: 'x' })), png],
    'a file one byte over the limit': [config, { ...png, value: Buffer.concat([PNG, Buffer.alloc(ctx.maxUploadBytes + 1 - PNG.length)]) }]
  } satisfies Record<string, Parameters<typeof multipartBody>[0]>)) {
    cases.push({ name: `form: ${name}`, send: { inject: form(parts) } })
  }
  const whole = multipartBody([config, png])
  const boundary = /boundary=(.+)$/.exec(whole.contentType)![1]!
  for (const [name, request] of Object.entries({
    'cut in the middle of the file': { headers: { 'content-type': whole.contentType }, payload: whole.body.subarray(0, whole.body.length - PNG.length / 2) },
    'without its closing boundary': { headers: { 'content-type': whole.contentType }, payload: whole.body.subarray(0, whole.body.lastIndexOf(`--${boundary}--`)) },
    'without a boundary parameter': { headers: { 'content-type': 'multipart/form-data' }, payload: whole.body },
    'with another boundary than the body': { headers: { 'content-type': 'multipart/form-data; boundary=nope' }, payload: whole.body },
    'with a boundary of 500 characters': { headers: { 'content-type': `multipart/form-data; boundary=${'b'.repeat(500)}` }, payload: whole.body },
    'that is plain text': { headers: { 'content-type': whole.contentType }, payload: 'not a form at all' },
    'that is empty': { headers: { 'content-type': whole.contentType }, payload: '' },
    [`of ${ctx.floodBytes} bytes, streamed`]: { headers: { 'content-type': whole.contentType }, payload: floodForm(boundary, ctx.floodBytes) }
  } satisfies Record<string, Omit<InjectOptions, 'url' | 'method'>>)) {
    cases.push({ name: `form ${name}`, send: { inject: { method: 'POST', url, ...request } } })
  }

  // Data that is no base64, or too much of it, or not data at all.
  for (const [name, request] of Object.entries({
    'base64 with foreign characters': dataUri('data:image/png;base64,iVBOR$%^&*()w0KGgo='),
    'bare base64 of text': dataUri(Buffer.from('hello, I am a picture').toString('base64')),
    'a text/html data URI': dataUri('data:text/html,<script>alert(1)</script>'),
    'a data URI without a comma': dataUri('data:image/png;base64'),
    'an empty data URI': dataUri('data:image/png;base64,'),
    'a PNG one byte over the limit': dataUri(Buffer.concat([PNG, Buffer.alloc(ctx.maxUploadBytes + 1 - PNG.length)]).toString('base64')),
    'a file path for data': dataUri('/etc/passwd'),
    'a file URL for data': dataUri('file:///etc/passwd'),
    'a PNG declared as video': dataUri(PNG.toString('base64'), { media_type: 'video' }),
    'source "file"': { method: 'POST', url, headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ source: 'file', path: '/etc/passwd', config: 'upload' }) },
    'a ComfyUI prompt id climbing out': { method: 'POST', url, headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ source: 'comfyui', prompt_id: '../../etc/passwd', config: 'upload' }) },
    'both a URL and data': { method: 'POST', url, headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ source: 'data', data: PNG.toString('base64'), url: 'http://127.0.0.1/', config: '../x' }) }
  } satisfies Record<string, InjectOptions>)) {
    cases.push({ name: `data: ${name}`, send: { inject: request } })
  }
  return cases
}

/** A form whose file part never ends until `total` bytes went by, made as it is read. */
function floodForm (boundary: string, total: number): Readable {
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="config"\r\n\r\nupload\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\nContent-Type: image/png\r\n\r\n`)
  const chunk = Buffer.alloc(64 * 1024, 0x41)
  let sent = 0
  return new Readable({
    read () {
      if (sent === 0) this.push(Buffer.concat([head, PNG_SIGNATURE]))
      if (sent >= total) {
        this.push(`\r\n--${boundary}--\r\n`)
        this.push(null)
        return
      }
      sent += chunk.length
      this.push(chunk)
    }
  })
}
