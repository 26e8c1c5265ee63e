// The workshop page as a child uses it, in a real headless Chromium: the
// page speaks the browser's language, a prompt runs with its stages shown
// as they stream in and the picture at the end, a blocked prompt gets a kind
// explanation, and everything works by keyboard.
/// <reference lib="dom" />
import t from 'tap'
import { build } from '../helper.js'
import { launchChromium } from './chromium.js'
import { listenRecording, screenshot, seriousViolations } from './pages.js'

const app = await build(t)
const { origin, answers } = await listenRecording(t, app)
const browser = await launchChromium()
t.teardown(async () => { await browser.close() })
// A tablet held upright, with German as the browser's language.
const context = await browser.newContext({ locale: 'de-DE', viewport: { width: 820, height: 1180 }, hasTouch: true })
const page = await context.newPage()
const problems: string[] = []
page.on('pageerror', (err) => { problems.push(err.message) })
page.on('console', (message) => { if (message.type() === 'error') problems.push(message.text()) })
await page.goto(`${origin}/`)
await page.waitForSelector('#pipelines input[type=radio]')

const stageTitles = async (): Promise<string[]> => await page.$$eval('#stages li h3', (items) => items.map((h) => h.textContent ?? ''))

t.test('the page speaks German in a German browser, English once chosen, and remembers it', async (t) => {
  t.equal(await page.getAttribute('html', 'lang'), 'de')
  t.equal(await page.textContent('h1'), 'Werkstatt')
  t.equal(await page.textContent('#go'), 'Los geht\'s')
  t.equal(await page.getAttribute('button.lang[lang=de]', 'aria-pressed'), 'true')
  await page.click('button.lang[lang=en]')
  t.equal(await page.getAttribute('html', 'lang'), 'en')
  t.equal(await page.textContent('h1'), 'Workshop')
  t.equal(await page.getAttribute('#prompt', 'placeholder'), 'A flower on the meadow, bigger than the trees …')
  await page.reload()
  await page.waitForSelector('#pipelines input[type=radio]')
  t.equal(await page.textContent('#go'), 'Make it', 'the choice outlives a reload')
})

t.test('pipeline cards show every pipeline with its description', async (t) => {
  const listed = (await app.inject({ url: '/api/schema/pipelines' })).json().pipelines as Array<{ name: string, description: string }>
  const cards = await page.$$eval('#pipelines label.card', (labels) => labels.map((label) => ({ name: (label.querySelector('input') as HTMLInputElement).value, text: label.textContent ?? '' })))
  t.same(cards.map((card) => card.name), listed.map((p) => p.name))
  for (const [i, card] of cards.entries()) t.match(card.text, listed[i]?.description ?? '')
})

t.test('a prompt runs: the stages appear live, then the picture', async (t) => {
  await page.check('#pipelines input[value=dada]')
  await page.fill('#prompt', 'Eine Blume auf der Wiese')
  await page.selectOption('#aspect', '16:9')
  await page.selectOption('#mode', 'eco')
  const seen: string[] = []
  // each stage is noted when it first shows, so a list drawn only at the end would fail
  await page.exposeFunction('noteStages', (titles: string[]) => { for (const title of titles) if (!seen.includes(title)) seen.push(title) })
  await page.evaluate(() => {
    new MutationObserver(() => {
      void (window as any).noteStages([...document.querySelectorAll('#stages li h3')].map((h) => h.textContent))
    }).observe(document.getElementById('stages') as HTMLElement, { childList: true, subtree: true })
  })
  await page.click('#go')
  const image = await page.waitForSelector('#outcome figure.image img', { timeout: 60_000 })
  await page.waitForFunction(() => (document.getElementById('go') as HTMLButtonElement).disabled === false)
  const picture = await image.evaluate(async (img: HTMLImageElement) => { await img.decode(); return { src: img.getAttribute('src'), width: img.naturalWidth, height: img.naturalHeight } })
  t.match(picture.src, /^\/api\/media\/image\/[0-9a-f-]{36}\/0$/)
  t.ok(picture.width > picture.height, `a 16:9 picture, ${picture.width}×${picture.height}`)

  const expected = ['Translated into English', 'Safety check of your idea', 'Your idea in the style of Dada', 'Safety check before making the picture', 'Making the picture']
  t.same(await stageTitles(), expected)
  t.same(seen, expected, 'each stage appeared as it began')
  const texts = await page.$$eval('#stages li', (items) => items.map((li) => li.textContent ?? ''))
  t.match(texts[0], 'A flower on the meadow', 'the translation')
  t.match(texts[1], 'All fine.', 'the safety decision, in words')
  const runId = /[0-9a-f-]{36}/.exec(picture.src ?? '')?.[0] ?? ''
  const metadata = (await app.inject({ url: `/api/runs/${runId}` })).json()
  t.match(texts[2], metadata.transformed_text, 'the transformed prompt')
  t.equal(metadata.status, 'completed')
  t.same(answers.filter((a) => a.url === '/api/schema/pipeline/execute').map((a) => [a.method, a.status]), [['POST', 200]], 'one request for the whole run')
  await screenshot(page, 'workshop.png')
})

t.test('by keyboard: a blocked prompt gets a kind explanation, no error code', async (t) => {
  await page.fill('#prompt', 'ein Messer')
  await page.focus('#prompt')
  const focused: string[] = []
  for (let i = 0; i < 3; i++) {
    await page.keyboard.press('Tab')
    focused.push(await page.evaluate(() => document.activeElement?.id ?? ''))
  }
  t.same(focused, ['aspect', 'mode', 'go'], 'Tab goes from the idea to the shape, the mode and the button')
  await page.keyboard.press('Enter')
  const box = await page.waitForSelector('#outcome .kind.blocked', { timeout: 60_000 })
  const text = await box.innerText()
  t.match(text, 'Let\'s try another idea')
  t.match(text, 'Weapons don\'t belong in our pictures')
  t.notMatch(text, /weapon\.|violence|403|blocked/i, 'no code, no status')
  t.equal(await page.$('#outcome img'), null, 'no picture')
  t.match(await page.textContent('#stages li.blocked'), 'Stopped here.')

  await page.click('button.lang[lang=de]')
  t.match(await page.textContent('#outcome .kind.blocked'), 'Lass uns eine andere Idee ausprobieren', 'the explanation follows the language')
  t.match(await page.textContent('#outcome .kind.blocked'), 'Waffen', 'in the safety check\'s German words')
  await page.click('button.lang[lang=en]')
})

t.test('an empty idea is asked for, not sent', async (t) => {
  const before = answers.length
  await page.fill('#prompt', '   ')
  await page.click('#go')
  t.equal(await page.textContent('#form-message'), 'Please write your idea first.')
  t.equal(await page.evaluate(() => document.activeElement?.id), 'prompt')
  t.equal(answers.slice(before).filter((a) => a.url.startsWith('/api/schema/pipeline')).length, 0)
})

t.test('a refusal before the run starts is a friendly message', async (t) => {
  await page.fill('#prompt', 'Ein Baum')
  await page.selectOption('#mode', 'fast')
  await page.route('**/api/schema/pipeline/execute', async (route) => {
    await route.fulfill({ status: 503, contentType: 'application/json', body: JSON.stringify({ statusCode: 503, error: 'Service Unavailable', code: 'BACKEND_UNAVAILABLE', message: 'no' }) })
  })
  await page.click('#go')
  const box = await page.waitForSelector('#outcome .kind.error')
  t.match(await box.innerText(), 'busy or switched off')
  t.notMatch(await box.innerText(), /BACKEND_UNAVAILABLE|503/)
  await page.unroute('**/api/schema/pipeline/execute')
  await page.selectOption('#mode', 'eco')
})

t.test('no serious accessibility problems; nothing went wrong in the page', async (t) => {
  t.same(await seriousViolations(page), [])
  t.same(problems.filter((p) => !p.includes('503')), [])
})
