// The workshop page: a style, an idea, and the run's stages as they happen.
import { ApiError, describeStage, executeStreaming, getJson, kindReason } from './api.js'
import { onLanguageChange, setUpLanguageSwitch, t } from './i18n.js'
import { mediaElement } from './media.js'

const form = document.getElementById('workshop')
const cards = document.getElementById('pipelines')
const prompt = document.getElementById('prompt')
const button = document.getElementById('go')
const formMessage = document.getElementById('form-message')
const progress = document.getElementById('progress-section')
const stageList = document.getElementById('stages')
const outcomeBox = document.getElementById('outcome')

let pipelines = []
// What the current run reported, kept to draw it again in another language.
let run = null

setUpLanguageSwitch(document.getElementById('langs'))
onLanguageChange(() => { drawCards(); drawRun() })

async function loadPipelines () {
  try {
    pipelines = (await getJson('/api/schema/pipelines')).pipelines
  } catch {
    pipelines = []
  }
  drawCards()
}

function drawCards () {
  const chosen = form.elements.schema?.value || pipelines[0]?.name
  const legend = cards.querySelector('legend')
  if (pipelines.length === 0) {
    const hint = document.createElement('p')
    hint.className = 'hint'
    hint.textContent = t('workshop.nopipelines')
    cards.replaceChildren(legend, hint)
    return
  }
  cards.replaceChildren(legend, ...pipelines.map((pipeline) => {
    const label = document.createElement('label')
    label.className = 'card'
    const input = document.createElement('input')
    input.type = 'radio'
    input.name = 'schema'
    input.value = pipeline.name
    input.checked = pipeline.name === chosen
    const title = document.createElement('strong')
    title.textContent = pipeline.title
    const description = document.createElement('span')
    description.textContent = pipeline.description
    label.append(input, title, description)
    return label
  }))
}

function stageKey (stage, info) {
  return [stage, info?.config ?? '', info?.media_type ?? ''].join(':')
}

form.addEventListener('submit', async (event) => {
  event.preventDefault()
  const inputText = prompt.value.trim()
  formMessage.textContent = ''
  if (inputText === '') {
    formMessage.textContent = t('workshop.empty')
    prompt.focus()
    return
  }
  const schema = form.elements.schema?.value ?? pipelines[0]?.name
  run = { schema, records: new Map(), media: [], outcome: null, error: null, blockedRecord: null, blocked: null }
  progress.hidden = false
  button.disabled = true
  button.textContent = t('workshop.working')
  drawRun()
  try {
    await executeStreaming({
      schema,
      input_text: inputText,
      aspect_ratio: form.elements.aspect_ratio.value,
      execution_mode: form.elements.execution_mode.value
    }, onEvent)
  } catch (err) {
    run.outcome = 'error'
    run.error = err instanceof ApiError ? err : new ApiError(0, null)
  }
  button.disabled = false
  button.textContent = t('workshop.submit')
  drawRun()
})

function onEvent ({ type, data }) {
  switch (type) {
    case 'run_created':
      run.runId = data.run_id
      break
    case 'stage_started':
      run.records.set(stageKey(data.stage, data), { stage: data.stage, media_type: data.media_type, details: { config: data.config, media_type: data.media_type } })
      break
    case 'stage_completed':
      run.records.set(stageKey(data.stage, data.details), data)
      if (data.status === 'blocked') run.blockedRecord = data
      break
    case 'media_stored':
      run.media.push(data)
      break
    case 'completed':
      run.outcome = 'completed'
      break
    case 'blocked':
      run.outcome = 'blocked'
      run.blocked = data
      break
    case 'error':
      run.outcome = 'error'
      run.error = new ApiError(data.statusCode, data)
      break
  }
  drawRun()
}

function drawRun () {
  if (run === null) return
  const title = pipelines.find((p) => p.name === run.schema)?.title ?? run.schema
  stageList.replaceChildren(...[...run.records.values()].map((record) => {
    const { title: heading, text, decision, state } = describeStage(record, title)
    const item = document.createElement('li')
    item.className = `stage ${state}`
    item.dataset.stage = record.stage
    const h = document.createElement('h3')
    h.textContent = heading
    item.append(h)
    if (text) {
      const p = document.createElement('p')
      p.className = 'stage-text'
      p.textContent = text
      item.append(p)
    }
    const p = document.createElement('p')
    p.className = 'decision'
    p.textContent = state === 'running' ? t('stage.running') : decision ?? t('decision.ok')
    item.append(p)
    return item
  }))
  outcomeBox.replaceChildren(...run.media.map((media) => mediaElement(media.media_type, media.url, t(`media.${media.media_type}`))))
  if (run.outcome === 'blocked') outcomeBox.append(kindBox('blocked', t('blocked.title'), kindReason(run.blockedRecord ?? { reason: run.blocked.reason }), t('blocked.text')))
  if (run.outcome === 'error') {
    const busy = run.error.status === 503 || run.error.status === 504
    outcomeBox.append(kindBox('error', t('error.title'), busy ? t('error.busy') : t('error.generic')))
  }
}

function kindBox (kind, heading, ...lines) {
  const box = document.createElement('div')
  box.className = `kind ${kind}`
  box.setAttribute('role', 'status')
  const h = document.createElement('h3')
  h.textContent = heading
  box.append(h, ...lines.filter((line) => line).map((line) => {
    const p = document.createElement('p')
    p.textContent = line
    return p
  }))
  return box
}

void loadPipelines()
