// The gallery of an export, as a researcher opens it: the ZIP unpacked into a
// folder and index.html opened from the disk (file://) in a real Chromium.
/// <reference lib="dom" />
import t from 'tap'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { ADMIN, workshopRuns } from '../exported-runs.js'
import { unzip } from '../unzip.js'
import { launchChromium } from './chromium.js'

const { app, runs } = await workshopRuns(t)
const res = await app.inject({ url: '/api/exports?formats=html', headers: ADMIN })
if (res.statusCode !== 200) throw new Error(`the export answered ${res.statusCode}: ${res.body}`)
const folder = await mkdtemp(join(tmpdir(), 'runstore-unpacked-'))
t.teardown(async () => { await rm(folder, { recursive: true, force: true }) })
for (const [name, bytes] of await unzip(res.rawPayload)) {
  await mkdir(dirname(join(folder, name)), { recursive: true })
  await writeFile(join(folder, name), bytes)
}

const browser = await launchChromium()
t.teardown(async () => { await browser.close() })
const page = await browser.newPage()
const requests: string[] = []
page.on('request', (request) => { requests.push(request.url()) })
const problems: string[] = []
page.on('console', (message) => { if (message.type() === 'error') problems.push(message.text()) })
page.on('pageerror', (err) => { problems.push(err.message) })
await page.goto(pathToFileURL(join(folder, 'index.html')).href, { waitUntil: 'load' })

const visibleCards = async (): Promise<string[]> => await page.$$eval('article.run', (cards) => cards.filter((card) => !(card as HTMLElement).hidden).map((card) => card.id.replace(/^run-/, '')))

t.test('every picture shows, from the unpacked folder', async (t) => {
  const images = await page.$$('img')
  t.equal(images.length, runs.flatMap((run) => run.outputs).filter((name) => name.startsWith('output_image')).length)
  for (const image of images) {
    // lazy pictures load when they come into view, as they do for someone scrolling
    await image.scrollIntoViewIfNeeded()
    await image.evaluate(async (img: HTMLImageElement) => { await img.decode() })
    const { src, width } = await image.evaluate((img: HTMLImageElement) => ({ src: img.currentSrc, width: img.naturalWidth }))
    t.ok(width > 0, `${src} decoded`)
    t.match(src, /^file:\/\/.+\/runs\/[0-9a-f-]{36}\/output_image\.(png|jpg|webp)$/)
  }
})

t.test('sound and video play', async (t) => {
  const media = await page.$$('audio, video')
  t.equal(media.length, 3, 'two sounds and a video')
  for (const element of media) {
    const played = await element.evaluate(async (el: HTMLMediaElement) => {
      el.muted = true
      await el.play()
      await new Promise((resolve) => { el.addEventListener('timeupdate', resolve, { once: true }) })
      el.pause()
      return { src: el.currentSrc, readyState: el.readyState, duration: el.duration, error: el.error?.code ?? null }
    })
    t.equal(played.error, null, played.src)
    t.ok(played.readyState >= 1 && played.duration > 0, `${played.src}: ${played.duration} s`)
  }
})

t.test('the texts stand beside the media, umlauts intact', async (t) => {
  for (const run of runs) {
    const card = await page.$eval(`#run-${run.run_id}`, (el) => (el as HTMLElement).innerText)
    t.match(card, run.input_text, run.run_id)
  }
  const text = await page.$eval('body', (el) => el.innerText)
  t.match(text, 'Grüße aus Köln: süße Äpfel, Öl und Straßenbahn')
  t.match(text, /Errors\s+BACKEND_FAILED: backend broken failed: out of memory/, 'a failed run says why')
})

t.test('filters by user and pipeline hide the other runs', async (t) => {
  const all = runs.map((run) => run.run_id).sort()
  t.same((await visibleCards()).sort(), all)
  t.match(await page.textContent('#count'), `${runs.length} of ${runs.length} runs`)

  t.same(await page.$$eval('#user option', (options) => options.map((o) => o.textContent)), ['all', '(none)', 'Anna', 'Émile', 'Jörg'])
  await page.selectOption('#user', 'Jörg')
  t.same((await visibleCards()).sort(), runs.filter((run) => run.user_id === 'Jörg').map((run) => run.run_id).sort())
  await page.selectOption('#pipeline', 'bauhaus')
  t.same(await visibleCards(), runs.filter((run) => run.user_id === 'Jörg' && run.schema === 'bauhaus').map((run) => run.run_id))
  t.match(await page.textContent('#count'), `1 of ${runs.length} runs`)
  await page.selectOption('#user', '')
  t.same(await visibleCards(), runs.filter((run) => run.user_id === null && run.schema === 'bauhaus').map((run) => run.run_id), 'no run without a user in bauhaus')
  await page.selectOption('#user', { index: 0 })
  await page.selectOption('#pipeline', { index: 0 })
  t.same((await visibleCards()).sort(), all)
})

t.test('nothing came from a network, nothing went wrong', async (t) => {
  t.ok(requests.length > runs.length, `${requests.length} requests`)
  t.same(requests.filter((url) => !url.startsWith('file://')), [])
  t.same(problems, [])
})
