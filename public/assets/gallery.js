// The gallery: the runs newest first, page after page as one scrolls, with filters, one run opened, exports.
import { ApiError, getJson } from './api.js'
import { formatTime, onLanguageChange, setUpLanguageSwitch, t } from './i18n.js'
import { renderRun, runTitle } from './run-view.js'

const PAGE_SIZE = 24
const TOKEN_KEY = 'runstore.adminToken'

const form = document.getElementById('filters')
const grid = document.getElementById('grid')
const count = document.getElementById('count')
const end = document.getElementById('end')
const more = document.getElementById('more')
const sentinel = document.getElementById('sentinel')
const runDialog = document.getElementById('run')
const runBody = document.getElementById('run-body')
const runHeading = document.getElementById('run-title')
const tokenDialog = document.getElementById('token')
const exportMessage = document.getElementById('export-message')

let pipelines = []
// The listing being shown: its filters, the runs so far, where the next page starts.
let listing = { query: new URLSearchParams(), runs: [], cursor: null, total: 0, exact: true, loading: false, failed: false, generation: 0 }
let openRun = null

setUpLanguageSwitch(document.getElementById('langs'))
onLanguageChange(() => {
  grid.replaceChildren(...listing.runs.map(tile))
  drawStatus()
  if (openRun !== null) showRun(openRun)
})

function localDay (value, plusDays = 0) {
  const [year, month, day] = value.split('-').map(Number)
  return new Date(year, month - 1, day + plusDays).toISOString()
}

function today () {
  const now = new Date()
  return `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, '0')}-${String(now.getDate()).padStart(2, '0')}`
}

/** The API query of the form: dates are the teacher's own days, `to` includes its day. */
function apiQuery () {
  const query = new URLSearchParams()
  for (const [name, raw] of new FormData(form)) {
    const value = String(raw).trim()
    if (value === '') continue
    if (name === 'from') query.set('from', localDay(value))
    else if (name === 'to') query.set('to', localDay(value, 1))
    else query.set(name, value)
  }
  return query
}

function formFromAddress () {
  const address = new URLSearchParams(location.search)
  if (address.size === 0) address.set('from', today())
  for (const [name, value] of address) if (form.elements[name] !== undefined) form.elements[name].value = value
}

function addressFromForm () {
  const address = new URLSearchParams()
  for (const [name, value] of new FormData(form)) if (String(value).trim() !== '') address.set(name, String(value).trim())
  history.replaceState(null, '', address.size === 0 ? '?all' : `?${address}`)
}

async function startListing () {
  listing = { query: apiQuery(), runs: [], cursor: null, total: 0, exact: true, loading: false, failed: false, generation: listing.generation + 1 }
  grid.replaceChildren()
  await loadPage()
}

async function loadPage () {
  if (listing.loading) return
  const current = listing
  current.loading = true
  drawStatus()
  const query = new URLSearchParams(current.query)
  query.set('limit', String(PAGE_SIZE))
  if (current.cursor !== null) query.set('cursor', current.cursor)
  try {
    const page = await getJson(`/api/runs?${query}`)
    if (current !== listing) return
    current.runs.push(...page.runs)
    current.cursor = page.next_cursor
    current.total = page.total
    current.exact = page.total_exact
    grid.append(...page.runs.map(tile))
  } catch {
    current.failed = true
  } finally {
    current.loading = false
  }
  drawStatus()
  // a tall screen may show the sentinel still: fill it
  if (current === listing && current.cursor !== null && isNearBottom()) await loadPage()
}

function isNearBottom () {
  return sentinel.getBoundingClientRect().top < window.innerHeight + 400
}

function drawStatus () {
  const shown = listing.runs.length
  count.textContent = t(listing.exact ? 'gallery.count' : 'gallery.countAtLeast', { shown, total: listing.total })
  more.hidden = listing.cursor === null || listing.failed
  if (listing.failed) end.textContent = t('gallery.error')
  else if (listing.loading) end.textContent = t('gallery.loading')
  else if (shown === 0) end.textContent = t('gallery.none')
  else end.textContent = listing.cursor === null ? t('gallery.end') : ''
}

function thumbnailOf (run) {
  if (run.thumbnail_url !== null) return `${run.thumbnail_url}?width=320`
  const type = run.media_types[0]
  return type === undefined ? null : `/api/media/${type}/${run.run_id}?width=320`
}

function tile (run) {
  const item = document.createElement('li')
  item.className = 'tile'
  item.dataset.runId = run.run_id
  const button = document.createElement('button')
  button.type = 'button'
  const src = thumbnailOf(run)
  if (src !== null) {
    const img = document.createElement('img')
    img.src = src
    img.alt = ''
    img.loading = 'lazy'
    img.width = 320
    img.height = 320
    button.append(img)
  } else {
    const none = document.createElement('span')
    none.className = 'noimage'
    none.textContent = t('gallery.notext')
    button.append(none)
  }
  const caption = document.createElement('span')
  caption.className = 'caption'
  const text = document.createElement('span')
  text.className = 'text'
  text.textContent = run.input_text
  const meta = document.createElement('span')
  meta.className = `meta status-${run.status}`
  meta.textContent = `${formatTime(run.timestamp)} · ${run.schema} · ${t(`status.${run.status}`)}${run.user_id ? ` · ${run.user_id}` : ''}`
  caption.append(text, meta)
  button.append(caption)
  button.addEventListener('click', () => { void open(run.run_id) })
  item.append(button)
  return item
}

async function open (runId) {
  try {
    showRun(await getJson(`/api/runs/${runId}`))
  } catch {
    exportMessage.textContent = t('gallery.error')
  }
}

function showRun (run) {
  openRun = run
  const title = pipelines.find((p) => p.name === run.schema)?.title
  runHeading.textContent = runTitle(run)
  runBody.replaceChildren(renderRun(run, title))
  if (!runDialog.open) runDialog.showModal()
}

document.getElementById('run-close').addEventListener('click', () => { runDialog.close() })
runDialog.addEventListener('close', () => {
  openRun = null
  // stop sound and video when the run is closed
  for (const media of runBody.querySelectorAll('audio, video')) media.pause()
})

function askToken () {
  return new Promise((resolve) => {
    const input = document.getElementById('token-input')
    input.value = ''
    tokenDialog.addEventListener('close', () => {
      resolve(tokenDialog.returnValue === 'ok' && input.value.trim() !== '' ? input.value.trim() : null)
    }, { once: true })
    tokenDialog.showModal()
  })
}

async function exportSelection () {
  let token = sessionStorage.getItem(TOKEN_KEY)
  if (token === null) {
    token = await askToken()
    if (token === null) return
  }
  exportMessage.textContent = t('export.running')
  const response = await fetch(`/api/exports?${listing.query}`, { headers: { authorization: `Bearer ${token}` } }).catch(() => null)
  if (response === null || !response.ok) {
    const status = response?.status ?? 0
    if (status === 401) sessionStorage.removeItem(TOKEN_KEY)
    exportMessage.textContent = status === 401 ? t('export.wrongToken') : status === 403 ? t('export.off') : t('export.failed')
    return
  }
  sessionStorage.setItem(TOKEN_KEY, token)
  const name = /filename="?([^";]+)"?/.exec(response.headers.get('content-disposition') ?? '')?.[1] ?? 'runstore-export.zip'
  const url = URL.createObjectURL(await response.blob())
  const link = document.createElement('a')
  link.href = url
  link.download = name
  document.body.append(link)
  link.click()
  link.remove()
  setTimeout(() => { URL.revokeObjectURL(url) }, 60_000)
  exportMessage.textContent = t('export.done')
}

document.getElementById('export').addEventListener('click', () => { void exportSelection() })
more.addEventListener('click', () => { void loadPage() })
form.addEventListener('submit', (event) => {
  event.preventDefault()
  addressFromForm()
  void startListing()
})
form.addEventListener('reset', () => {
  // after the browser emptied the fields
  setTimeout(() => { addressFromForm(); void startListing() })
})

new IntersectionObserver((entries) => {
  if (entries.some((entry) => entry.isIntersecting) && listing.cursor !== null) void loadPage()
}, { rootMargin: '400px' }).observe(sentinel)

async function start () {
  formFromAddress()
  try {
    pipelines = (await getJson('/api/schema/pipelines')).pipelines
  } catch (err) {
    if (!(err instanceof ApiError)) throw err
  }
  const select = form.elements.schema
  for (const pipeline of pipelines) {
    const option = document.createElement('option')
    option.value = pipeline.name
    option.textContent = pipeline.title
    select.append(option)
  }
  const wanted = new URLSearchParams(location.search).get('schema')
  if (wanted !== null) select.value = wanted
  await startListing()
}

void start()
