// Talking to the service, and its stage records in words people read.
import { currentLanguage, t } from './i18n.js'

export class ApiError extends Error {
  constructor (status, body) {
    super(body?.message ?? `HTTP ${status}`)
    this.status = status
    this.code = body?.code ?? null
  }
}

export async function getJson (url, init = {}) {
  const response = await fetch(url, { ...init, headers: { accept: 'application/json', ...init.headers } })
  const body = await response.json().catch(() => null)
  if (!response.ok) throw new ApiError(response.status, body)
  return body
}

/**
 * POSTs a pipeline request and hands each Server-Sent Event to onEvent as
 * it arrives (EventSource cannot POST). A refusal before the run starts
 * (404, 503 …) is a JSON answer instead of a stream: it throws ApiError.
 */
export async function executeStreaming (body, onEvent) {
  const response = await fetch('/api/schema/pipeline/execute', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify(body)
  })
  if (!response.ok || !(response.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
    throw new ApiError(response.status, await response.json().catch(() => null))
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
  let buffer = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) break
    buffer += value
    let end
    while ((end = buffer.indexOf('\n\n')) !== -1) {
      const frame = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      const event = parseFrame(frame)
      if (event !== null) onEvent(event)
    }
  }
}

function parseFrame (frame) {
  let type = 'message'
  const data = []
  for (const line of frame.split('\n')) {
    if (line.startsWith(':')) continue
    if (line.startsWith('event:')) type = line.slice(6).trim()
    else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''))
  }
  if (data.length === 0) return null
  return { type, data: JSON.parse(data.join('\n')) }
}

/** The media URL of the n-th output of its type in a run (the media routes count per type). */
export function mediaUrl (run, output) {
  const nth = run.outputs.filter((o) => o.type === output.type && o.index < output.index).length
  return `/api/media/${output.type}/${run.run_id}/${nth}`
}

/**
 * A stage record as a title, its text and its decision in plain words.
 * `pipelineTitle` names the style for the interception stage.
 */
export function describeStage (record, pipelineTitle) {
  const media = t(`media.${record.media_type ?? record.details?.media_type ?? 'image'}`)
  const title = t(`stage.${record.stage}`, { pipeline: pipelineTitle ?? record.details?.pipeline ?? '', media })
  let text = null
  if (record.stage === 'translation' || record.stage === 'interception') text = record.output ?? null
  let decision = null
  let state = record.status
  if (record.status === 'blocked') {
    decision = `${t('decision.blocked')} ${kindReason(record)}`.trim()
  } else if (record.status === 'failed') {
    decision = t('decision.failed')
  } else if (record.status === 'skipped') {
    decision = t('decision.skipped')
  } else if (record.decision !== undefined && record.decision !== null) {
    decision = record.decision.allowed === false ? `${t('decision.blocked')} ${kindReason(record)}`.trim() : t('decision.ok')
    if (record.decision.allowed === false) state = 'blocked'
  } else if (record.status === undefined) {
    state = 'running'
  }
  return { title, text, decision, state }
}

/** The safety check's sentence for children, in German where the check gave one. */
export function kindReason (record) {
  if (currentLanguage() === 'de' && typeof record.details?.reason_de === 'string') return record.details.reason_de
  return record.decision?.reason ?? record.reason ?? ''
}
