// The workshop frontend is served from another origin and shows media straight
// from the service. A real Chromium plays that frontend: it posts a child's
// prompt, shows the picture, plays the sound and the video (with the Range
// requests a media element makes), reads the live events, and a page from an
// origin that CORS_ORIGINS does not list is kept out.
/// <reference lib="dom" />
import t from 'tap'
import { readFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Page } from 'playwright-core'
import { buildApp } from '../../app.js'
import { fixtures } from '../fixtures/media.js'
import { tempRunsDir, testConfig } from '../helper.js'
import { launchChromium } from './chromium.js'

const PAGE = '<!doctype html><html><head><meta charset="utf-8"><title>Workshop</title></head><body><main id="gallery"></main></body></html>'

async function listen (server: Server, port = 0): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', resolve)
  })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

/** A static frontend: the page every workshop screen starts from. */
async function serveFrontend (): Promise<string> {
  const server = createServer((_request, response) => {
    response.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(PAGE)
  })
  const origin = await listen(server)
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  return origin
}

/** A port nobody listens on now, so PUBLIC_BASE_URL can name the service before it listens. */
async function freePort (): Promise<number> {
  const server = createServer()
  await listen(server)
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

const frontend = await serveFrontend()
const stranger = await serveFrontend()
const port = await freePort()
const api = `http://127.0.0.1:${port}`
const runsDir = await tempRunsDir(t)
const app = await buildApp(testConfig(runsDir, { CORS_ORIGINS: frontend, PUBLIC_BASE_URL: api }))
const mediaAnswers: Array<{ url: string, method: string, status: number, range: string | undefined, contentRange: unknown }> = []
app.addHook('onResponse', async (request, reply) => {
  if (!request.url.startsWith('/api/media/')) return
  mediaAnswers.push({ url: request.url, method: request.method, status: reply.statusCode, range: request.headers.range, contentRange: reply.getHeader('content-range') })
})
await app.listen({ host: '127.0.0.1', port })
t.teardown(async () => { await app.close() })

const browser = await launchChromium()
t.teardown(async () => { await browser.close() })

async function workshopPage (origin = frontend): Promise<Page> {
  const page = await browser.newPage()
  t.teardown(async () => { await page.close() })
  await page.goto(`${origin}/`)
  return page
}

const metadataOf = async (runId: string): Promise<any> => JSON.parse(await readFile(`${runsDir}/${runId}/metadata.json`, 'utf8'))

t.test('a child\'s prompt from the workshop page: the picture shows, and may be drawn and read back', async (t) => {
  const page = await workshopPage()
  const seen = await page.evaluate(async (api) => {
    const response = await fetch(`${api}/api/schema/pipeline/execute`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ schema: 'dada', input_text: 'Eine Blume auf der Wiese' })
    })
    const answer: any = await response.json()
    const img = document.createElement('img')
    img.crossOrigin = 'anonymous'
    img.src = answer.media_output.url
    document.querySelector('#gallery')!.append(img)
    await img.decode()
    // Reading pixels back throws for a picture without CORS headers (a tainted canvas).
    const canvas = document.createElement('canvas')
    canvas.width = img.naturalWidth
    canvas.height = img.naturalHeight
    const context = canvas.getContext('2d')!
    context.drawImage(img, 0, 0)
    const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data
    const colours = new Set<number>()
    for (let i = 0; i < pixels.length; i += 4) colours.add((pixels[i]! << 16) | (pixels[i + 1]! << 8) | pixels[i + 2]!)
    return {
      status: response.status,
      runIdHeader: response.headers.get('X-Run-Id'),
      answer,
      width: img.naturalWidth,
      height: img.naturalHeight,
      colours: colours.size
    }
  }, api)

  t.equal(seen.status, 200)
  const runId = seen.answer.run_id as string
  t.equal(seen.runIdHeader, runId, 'X-Run-Id is readable cross-origin')
  t.equal(seen.answer.media_output.url, `${api}/api/media/image/${runId}/0`, 'the URL names the service, not the page\'s origin')
  const metadata = await metadataOf(runId)
  t.equal(metadata.status, 'completed')
  t.equal(seen.width, metadata.outputs[0].width, 'the browser decoded the stored picture at its recorded size')
  t.equal(seen.height, metadata.outputs[0].height)
  t.ok(seen.colours > 50, `a picture, not a blank (${seen.colours} colours)`)
})

t.test('the builtin sound plays in an <audio> element with its recorded duration', async (t) => {
  const page = await workshopPage()
  const seen = await page.evaluate(async (api) => {
    const response = await fetch(`${api}/api/schema/pipeline/execute`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ schema: 'bauhaus', input_text: 'Ein Vogel singt', output_configs: ['builtin_audio'] })
    })
    const answer: any = await response.json()
    const info: any = await (await fetch(`${api}/api/media/info/${answer.run_id}`)).json()
    const audio = document.createElement('audio')
    audio.src = info.url
    document.querySelector('#gallery')!.append(audio)
    await new Promise((resolve, reject) => {
      audio.onloadedmetadata = resolve
      audio.onerror = () => { reject(new Error(`audio error ${audio.error?.code}`)) }
    })
    return { status: response.status, runId: answer.run_id, infoType: info.type, duration: audio.duration }
  }, api)

  t.equal(seen.status, 200)
  t.equal(seen.infoType, 'audio', 'info.type tells the frontend to use <audio>')
  const output = (await metadataOf(seen.runId)).outputs[0]
  t.equal(output.mime_type, 'audio/wav')
  t.ok(Math.abs(seen.duration - output.duration_seconds) < 0.05, `browser ${seen.duration} s, metadata ${output.duration_seconds} s`)
})

t.test('a video uploaded from the page plays and seeks, over Range requests', async (t) => {
  const page = await workshopPage()
  const webm = await readFile(fixtures.webm.file)
  const seen = await page.evaluate(async ({ api, bytes }) => {
    const created = await fetch(`${api}/api/runs`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ schema: 'dada', execution_mode: 'eco', input_text: 'Ein Film aus der Werkstatt' })
    })
    const run: any = await created.json()
    const form = new FormData()
    form.append('config', 'workshop_upload')
    form.append('file', new Blob([new Uint8Array(bytes)], { type: 'video/webm' }), 'werkstatt.webm')
    const uploaded = await fetch(`${api}/api/runs/${run.run_id}/media`, { method: 'POST', body: form })
    const output: any = await uploaded.json()
    const video = document.createElement('video')
    video.muted = true
    video.src = `${api}/api/media/video/${run.run_id}`
    document.querySelector('#gallery')!.append(video)
    await new Promise((resolve, reject) => {
      video.onloadedmetadata = resolve
      video.onerror = () => { reject(new Error(`video error ${video.error?.code}: ${video.error?.message}`)) }
    })
    video.currentTime = 0.5
    await new Promise((resolve) => { video.onseeked = resolve })
    return {
      created: created.status,
      uploaded: uploaded.status,
      runId: run.run_id as string,
      output,
      width: video.videoWidth,
      height: video.videoHeight,
      duration: video.duration,
      at: video.currentTime
    }
  }, { api, bytes: [...webm] })

  t.equal(seen.created, 201)
  t.equal(seen.uploaded, 201, 'multipart upload across origins')
  t.match(seen.output, { type: 'video', format: 'webm', mime_type: 'video/webm', width: 64, height: 48, file_size_bytes: webm.length })
  t.equal(seen.width, 64, 'the browser decoded the video at its probed size')
  t.equal(seen.height, 48)
  t.ok(Math.abs(seen.duration - seen.output.duration_seconds) < 0.1, `browser ${seen.duration} s, metadata ${seen.output.duration_seconds} s`)
  t.ok(Math.abs(seen.at - 0.5) < 0.1, 'it seeked')
  const videoAnswers = mediaAnswers.filter((a) => a.url === `/api/media/video/${seen.runId}`)
  t.ok(videoAnswers.length > 0, 'the media element asked the service itself')
  t.ok(videoAnswers.every((a) => a.status === 200 || a.status === 206), JSON.stringify(videoAnswers))
  const ranged = videoAnswers.filter((a) => a.range !== undefined)
  t.ok(ranged.length > 0, 'Chromium asked with Range')
  t.ok(ranged.every((a) => a.status === 206 && /^bytes \d+-\d+\/\d+$/.test(String(a.contentRange))), 'and got 206 with Content-Range')
})

t.test('live progress: the page reads the events as they come', async (t) => {
  const page = await workshopPage()
  const events = await page.evaluate(async (api) => {
    const response = await fetch(`${api}/api/schema/pipeline/execute`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream' },
      body: JSON.stringify({ schema: 'dada', input_text: 'Ein Haus am See' })
    })
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
    let text = ''
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      text += value
    }
    return text.split('\n\n').flatMap((block) => {
      const event = /^event: (.+)$/m.exec(block)?.[1]
      const data = /^data: (.+)$/m.exec(block)?.[1]
      return event === undefined ? [] : [{ event, data: JSON.parse(data ?? 'null') }]
    })
  }, api)

  t.equal(events[0]?.event, 'run_created')
  t.equal(events.at(-1)?.event, 'completed')
  const stored = events.find((e) => e.event === 'media_stored')
  t.ok(stored, 'media_stored arrives before the end')
  t.match(stored?.data.url, new RegExp(`^${api}/api/media/image/`))
  t.equal((await metadataOf(events[0]!.data.run_id)).status, 'completed')
})

t.test('a page from an origin CORS_ORIGINS does not list cannot read the service', async (t) => {
  const runId = (await app.storage.createRun({ schema: 'dada', execution_mode: 'eco', input_text: 'privat' })).run_id
  const allowed = await (await workshopPage()).evaluate(async (url) => (await fetch(url)).status, `${api}/api/media/info/${runId}`)
  t.equal(allowed, 200, 'the workshop page can')
  const refused = await (await workshopPage(stranger)).evaluate(async (url) => {
    try {
      await fetch(url)
      return 'read'
    } catch (err) {
      return String(err)
    }
  }, `${api}/api/media/info/${runId}`)
  t.match(refused, /TypeError: Failed to fetch/, 'the browser withholds the answer from another origin')
})
