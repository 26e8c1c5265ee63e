// The gallery as a teacher or researcher uses it, in a real headless
// Chromium: more runs than one page, filters, a run opened with its sound
// and video played (the video seeked over a Range request), its ZIP and an
// export of the selection downloaded, thumbnails instead of the originals.
/// <reference lib="dom" />
import t from 'tap'
import { readFile } from 'node:fs/promises'
import type { Download } from 'playwright-core'
import { ADMIN_TOKEN, workshopRuns } from '../exported-runs.js'
import { unzip } from '../unzip.js'
import { launchChromium } from './chromium.js'
import { listenRecording, screenshot, seriousViolations } from './pages.js'

const PAGE_SIZE = 24
const { app, runs } = await workshopRuns(t)
// a full-size picture (1024 wide), so its thumbnail has something to shrink
const big = (await app.inject({ method: 'POST', url: '/api/schema/pipeline/execute', payload: { schema: 'futurism', input_text: 'Ein Zug in der Nacht', user_id: 'Lena', output_configs: ['builtin_image'] } })).json()
// plain runs, so the listing needs more than one page
for (let i = 0; i < PAGE_SIZE; i++) {
  await app.inject({ method: 'POST', url: '/api/runs', payload: { schema: 'fairytale', execution_mode: 'eco', input_text: `Märchen Nummer ${i}`, user_id: 'Klasse 4b' } })
}
const total = runs.length + 1 + PAGE_SIZE
const { origin, answers } = await listenRecording(t, app)

const browser = await launchChromium()
t.teardown(async () => { await browser.close() })
const context = await browser.newContext({ locale: 'en-GB', viewport: { width: 1024, height: 768 }, acceptDownloads: true })
const page = await context.newPage()
const problems: string[] = []
page.on('pageerror', (err) => { problems.push(err.message) })
page.on('console', (message) => { if (message.type() === 'error') problems.push(message.text()) })

const tiles = async (): Promise<string[]> => await page.$$eval('#grid li', (items) => items.map((li) => (li as HTMLElement).dataset.runId ?? ''))
const listings = (): string[] => answers.filter((a) => a.url.startsWith('/api/runs?')).map((a) => decodeURIComponent(a.url))
const waitForCount = async (text: string): Promise<void> => {
  await page.waitForFunction((text) => document.getElementById('count')?.textContent === text && document.getElementById('end')?.textContent !== 'Loading …', text)
}

t.test('the gallery loads today\'s runs, newest first, one page', async (t) => {
  await page.goto(`${origin}/gallery`)
  await waitForCount(`${PAGE_SIZE} of ${total} runs`)
  const listed = (await app.inject({ url: `/api/runs?limit=${PAGE_SIZE}` })).json().runs.map((r: { run_id: string }) => r.run_id)
  t.same(await tiles(), listed, 'the first page, newest first')
  t.match(listings()[0], /from=\d{4}-\d\d-\d\dT\d\d:00:00\.000Z/, 'today, from the teacher\'s midnight')
  t.match(await page.inputValue('#f-from'), /^\d{4}-\d\d-\d\d$/)
})

t.test('scrolling down loads the next page over the cursor', async (t) => {
  const before = listings().length
  await page.locator('#sentinel').scrollIntoViewIfNeeded()
  await waitForCount(`${total} of ${total} runs`)
  t.equal((await tiles()).length, total)
  t.equal(new Set(await tiles()).size, total, 'no run twice')
  const next = listings().slice(before)
  t.equal(next.length, 1)
  t.match(next[0], /cursor=/)
  t.equal(await page.textContent('#end'), 'That is all.')
  t.ok(await page.isHidden('#more'))
})

t.test('thumbnails are small pictures made from the originals', async (t) => {
  const bigTile = page.locator(`#grid li[data-run-id="${big.run_id}"] img`)
  await bigTile.scrollIntoViewIfNeeded()
  const shown = await bigTile.evaluate(async (img: HTMLImageElement) => { await img.decode(); return { src: img.getAttribute('src'), width: img.naturalWidth } })
  t.equal(shown.src, `/api/media/image/${big.run_id}/0?width=320`)
  t.equal(shown.width, 320)
  const original = (await app.inject({ url: `/api/runs/${big.run_id}` })).json().outputs[0]
  t.equal(original.width, 1024)
  t.ok(answers.some((a) => a.url === shown.src && a.status === 200), 'the server made it')
  // the bytes the browser received for it
  const received = await page.evaluate((src) => (performance.getEntriesByName(new URL(src, location.href).href)[0] as PerformanceResourceTiming).encodedBodySize, shown.src ?? '')
  t.ok(received > 0 && received < original.file_size_bytes / 4, `${received} bytes against the original's ${String(original.file_size_bytes)}`)
  t.notOk(answers.some((a) => a.url === `/api/media/image/${big.run_id}/0`), 'the original was not fetched')
  for (const src of await page.$$eval('#grid img', (imgs) => imgs.map((img) => img.getAttribute('src')))) t.match(src, /\?width=320$/)
})

t.test('filters: pipeline, user, status, media type, text, dates', async (t) => {
  const pick = async (apply: () => Promise<void>, expected: number): Promise<string[]> => {
    await apply()
    await page.click('#filters button[type=submit]')
    await waitForCount(`${expected} of ${expected} runs`)
    return await tiles()
  }
  const ids = (filter: (run: typeof runs[number]) => boolean): string[] => runs.filter(filter).map((run) => run.run_id).reverse()

  t.same(await pick(async () => { await page.selectOption('#f-schema', 'bauhaus') }, 2), ids((run) => run.schema === 'bauhaus'))
  t.match(page.url(), /schema=bauhaus/, 'the filters are in the address, to share')
  t.same(await pick(async () => { await page.fill('#f-user', 'Jörg') }, 1), ids((run) => run.schema === 'bauhaus' && run.user_id === 'Jörg'))
  await page.click('#reset')
  await waitForCount(`${PAGE_SIZE} of ${total} runs`)
  t.equal(await page.inputValue('#f-from'), '', 'reset empties the dates too')
  t.same(await pick(async () => { await page.selectOption('#f-status', 'blocked') }, 1), ids((run) => run.input_text === 'ein Messer'))
  await page.selectOption('#f-status', '')
  t.same(await pick(async () => { await page.selectOption('#f-media', 'video') }, 1), ids((run) => run.outputs.some((name) => name.endsWith('.webm'))))
  await page.selectOption('#f-media', '')
  t.same(await pick(async () => { await page.fill('#f-q', 'würfel') }, 2), ids((run) => run.input_text.includes('Würfel')))
  await page.fill('#f-q', '')
  await pick(async () => { await page.fill('#f-from', '2000-01-01'); await page.fill('#f-to', '2000-01-02') }, 0)
  t.equal(await page.textContent('#end'), 'No runs match.')
  await page.fill('#f-from', '')
  await page.fill('#f-to', '')
  await page.selectOption('#f-schema', 'bauhaus')
  await page.click('#filters button[type=submit]')
  await waitForCount('2 of 2 runs')
})

t.test('a run opened: input, stages, outputs with their facts; sound and video play, the video seeks over Range', async (t) => {
  const run = runs.find((r) => r.outputs.some((name) => name.endsWith('.webm')))
  if (run === undefined) throw new Error('no run with a video')
  const before = answers.length
  await page.click(`#grid li[data-run-id="${run.run_id}"] button`)
  await page.waitForSelector('#run[open] .output video')
  const body = await page.innerText('#run-body')
  t.match(body, run.input_text)
  t.match(body, 'A cat 🐱 on the street')
  const metadata = (await app.inject({ url: `/api/runs/${run.run_id}` })).json()
  for (const output of metadata.outputs) {
    t.match(body, output.sha256)
    t.match(body, output.filename)
  }
  t.match(body, /Dimensions\s+64 × 48/)
  t.match(body, /Duration\s+1\.00 s/)
  t.match(body, /Backend\s+data/)
  t.match(await page.getAttribute('#run-body .output img', 'src'), `/api/media/image/${run.run_id}/0`, 'the picture full size, not a thumbnail')

  const video = await page.$eval('#run-body video', async (el: HTMLVideoElement) => {
    el.muted = true
    await el.play()
    el.pause()
    el.currentTime = 0.5
    await new Promise((resolve) => { el.addEventListener('seeked', resolve, { once: true }) })
    return { duration: el.duration, error: el.error?.code ?? null, time: el.currentTime }
  })
  t.equal(video.error, null)
  t.ok(video.duration > 0.9, `${video.duration} s`)
  t.ok(video.time > 0.4)
  const videoAnswers = answers.slice(before).filter((a) => a.url === `/api/media/video/${run.run_id}/0`)
  t.ok(videoAnswers.some((a) => a.range !== undefined && a.status === 206), `a Range request answered 206 (${videoAnswers.map((a) => `${String(a.range)}→${a.status}`).join(', ')})`)

  t.same(await seriousViolations(page), [], 'the open run has no serious accessibility problem')
  await page.keyboard.press('Escape')
  await page.waitForSelector('#run', { state: 'hidden' })

  const withSound = runs.find((r) => r.schema === 'bauhaus' && r.outputs.some((name) => name.endsWith('.mp3')))
  if (withSound === undefined) throw new Error('no run with a sound')
  await page.click(`#grid li[data-run-id="${withSound.run_id}"] button`)
  // The dialog fills in once the run's document has arrived.
  await page.waitForSelector('#run[open] #run-body audio')
  const audio = await page.$eval('#run[open] #run-body audio', async (el: HTMLAudioElement) => {
    el.muted = true
    await el.play()
    await new Promise((resolve) => { el.addEventListener('timeupdate', resolve, { once: true }) })
    el.pause()
    return { src: el.getAttribute('src'), duration: el.duration, error: el.error?.code ?? null }
  })
  t.equal(audio.error, null)
  t.equal(audio.src, `/api/media/audio/${withSound.run_id}/0`)
  t.ok(audio.duration > 1, `${audio.duration} s`)
})

const savedBytes = async (download: Download): Promise<Buffer> => await readFile(await download.path())

t.test('the run\'s ZIP downloads', async (t) => {
  const runId = await page.$eval('#run-body', (el) => /[0-9a-f]{8}-[0-9a-f-]{27}/.exec(el.textContent ?? '')?.[0])
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#run-body a[href$="export.zip"]')])
  t.equal(download.suggestedFilename(), `${String(runId)}.zip`)
  const entries = await unzip(await savedBytes(download))
  t.ok(entries.has(`${String(runId)}/metadata.json`), [...entries.keys()].join(', '))
  t.ok(entries.has(`${String(runId)}/output_audio.mp3`))
  await page.click('#run-close')
})

t.test('the selection exports with the admin token, asked for once per tab', async (t) => {
  await page.click('#export')
  await page.waitForSelector('#token[open]')
  await page.fill('#token-input', 'not the token')
  await page.click('#token button[value=ok]')
  await page.waitForFunction(() => document.getElementById('export-message')?.textContent === 'The token was not accepted.')
  t.equal(await page.evaluate(() => sessionStorage.getItem('runstore.adminToken')), null, 'a wrong token is not kept')

  await page.click('#export')
  await page.fill('#token-input', ADMIN_TOKEN)
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#token button[value=ok]')])
  t.match(download.suggestedFilename(), /^runstore-export-.+\.zip$/)
  const entries = await unzip(await savedBytes(download))
  const folders = new Set([...entries.keys()].filter((name) => name.startsWith('runs/')).map((name) => name.split('/')[1]))
  t.same([...folders].sort(), runs.filter((run) => run.schema === 'bauhaus').map((run) => run.run_id).sort(), 'the filtered runs only')
  t.ok(entries.has('runs.csv'))
  t.equal(await page.evaluate(() => sessionStorage.getItem('runstore.adminToken')), ADMIN_TOKEN)
  const exportRequests = answers.filter((a) => a.url.startsWith('/api/exports?'))
  t.same(exportRequests.map((a) => a.status), [401, 200])
  t.match(decodeURIComponent(exportRequests[1]?.url ?? ''), 'schema=bauhaus')

  // the second time, no question
  const [again] = await Promise.all([page.waitForEvent('download'), page.click('#export')])
  t.ok((await savedBytes(again)).length > 0)
  t.notOk(await page.isVisible('#token'))
})

t.test('in German, on a tablet, with no serious accessibility problem', async (t) => {
  await page.click('button.lang[lang=de]')
  t.equal(await page.textContent('#count'), '2 von 2 Durchläufen')
  await page.click('#reset')
  await page.waitForFunction((total) => document.getElementById('count')?.textContent === `24 von ${total} Durchläufen`, total)
  t.same(await seriousViolations(page), [])
  await page.setViewportSize({ width: 820, height: 1180 })
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth)
  t.notOk(overflow, 'nothing wider than the tablet')
  await page.click('button.lang[lang=en]')
  await page.setViewportSize({ width: 1024, height: 768 })
  // the runs with pictures, for the screenshot
  await page.selectOption('#f-media', 'image')
  await page.click('#filters button[type=submit]')
  await page.waitForFunction(() => document.getElementById('end')?.textContent === 'That is all.')
  await page.$$eval('#grid img', async (imgs) => { await Promise.all(imgs.map(async (img) => { await (img as HTMLImageElement).decode() })) })
  await page.evaluate(() => { window.scrollTo(0, 0) })
  await screenshot(page, 'gallery.png')
  t.same(problems, ['Failed to load resource: the server responded with a status of 401 (Unauthorized)'], 'only the wrong token\'s answer')
})
