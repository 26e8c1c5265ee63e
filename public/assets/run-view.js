// One run opened in the gallery: what was typed, every stage, every output and its facts.
import { describeStage, mediaUrl } from './api.js'
import { formatBytes, formatTime, t } from './i18n.js'
import { mediaElement } from './media.js'

function el (tag, attributes = {}, ...children) {
  const element = document.createElement(tag)
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value)
  element.append(...children.filter((child) => child !== null && child !== undefined))
  return element
}

function facts (rows) {
  const list = el('dl', { class: 'facts' })
  for (const [key, value] of rows) {
    if (value === null || value === undefined || value === '') continue
    list.append(el('dt', {}, t(key)), el('dd', {}, String(value)))
  }
  return list
}

function seedOf (run) {
  return run.seed ?? run.stages.find((stage) => stage.stage === 'generation')?.details?.seed ?? null
}

export function runTitle (run) {
  return `${formatTime(run.timestamp)} · ${run.schema}`
}

/** The body of the run dialog. */
export function renderRun (run, pipelineTitle) {
  const body = document.createDocumentFragment()
  body.append(facts([
    ['fact.run', run.run_id],
    ['fact.user', run.user_id],
    ['fact.time', formatTime(run.timestamp)],
    ['fact.pipeline', pipelineTitle ?? run.schema],
    ['fact.mode', run.execution_mode],
    ['fact.status', t(`status.${run.status}`)],
    ['fact.seed', seedOf(run)]
  ]))
  body.append(el('h3', {}, t('run.input')), el('p', { class: 'stage-text', lang: '' }, run.input_text))
  if (run.transformed_text !== null) body.append(el('h3', {}, t('run.transformed')), el('p', { class: 'stage-text', lang: 'en' }, run.transformed_text))

  if (run.stages.length > 0) {
    body.append(el('h3', {}, t('run.stages')))
    const list = el('ol', { class: 'stages' })
    for (const record of run.stages) {
      const { title, decision, state } = describeStage(record, pipelineTitle)
      const item = el('li', { class: `stage ${state}`, 'data-stage': record.stage }, el('h4', {}, title))
      if (record.output) item.append(el('p', { class: 'stage-text' }, record.output))
      if (decision) item.append(el('p', { class: 'decision' }, decision))
      list.append(item)
    }
    body.append(list)
  }

  body.append(el('h3', {}, t('run.outputs')))
  if (run.outputs.length === 0) body.append(el('p', { class: 'hint' }, t('run.nooutputs')))
  for (const output of run.outputs) {
    const url = mediaUrl(run, output)
    const section = el('section', { class: 'output', 'data-type': output.type, 'aria-label': `${t(`media.${output.type}`)} ${output.filename}` })
    section.append(mediaElement(output.type, url, `${t(`media.${output.type}`)}: ${run.transformed_text ?? run.input_text}`))
    section.append(facts([
      ['fact.file', output.filename],
      ['fact.size', `${formatBytes(output.file_size_bytes)} (${output.format})`],
      ['fact.dimensions', output.width !== null && output.height !== null ? `${output.width} × ${output.height}` : null],
      ['fact.duration', output.duration_seconds !== null ? `${output.duration_seconds.toFixed(2)} s` : null],
      ['fact.backend', output.backend],
      ['fact.config', output.config],
      ['fact.sha256', output.sha256]
    ]))
    body.append(section)
  }

  if (run.errors.length > 0) {
    body.append(el('h3', {}, t('run.errors')))
    body.append(el('ul', {}, ...run.errors.map((error) => el('li', {}, `${error.code}: ${error.message}`))))
  }

  const zip = el('a', { class: 'button', href: `/api/runs/${run.run_id}/export.zip`, download: `${run.run_id}.zip` }, t('run.zip'))
  body.append(el('div', { class: 'run-actions' }, zip))
  return body
}
