// A client as a research script would write it: openapi-fetch over the types
// openapi-typescript generates from runstore's /openapi.json
// (generated/runstore.ts, made by test/openapi/generate-client.ts). This file
// is type-checked against those types with TypeScript 5.9; the @ts-expect-error
// lines fail the check when the types are too loose to catch a mistake.
import createClient from 'openapi-fetch'
import type { paths } from './generated/runstore.js'

export interface Drive {
  baseUrl: string
  adminToken: string
  /** a PNG to upload */
  image: Uint8Array<ArrayBuffer>
  user: string
}

export interface Seen {
  runId: string
  uploaded: { status: number, type: string, sha256: string, fileSize: number }
  media: { status: number, contentType: string | null, bytes: Uint8Array }
  range: { status: number, contentRange: string | null, bytes: Uint8Array }
  listed: { status: number, runIds: string[], nextCursor: string | null }
  runZip: { status: number, contentType: string | null, bytes: Uint8Array }
  export: { status: number, contentType: string | null, bytes: Uint8Array }
  executed: { status: number, runId: string, chosen: string[] | null, mediaUrl: string | null }
  events: { status: number, contentType: string | null, text: string }
}

function fail (what: string, status: number, error: unknown): never {
  throw new Error(`${what}: ${status} ${JSON.stringify(error)}`)
}

export async function driveRunstore ({ baseUrl, adminToken, image, user }: Drive): Promise<Seen> {
  const client = createClient<paths>({ baseUrl })

  const created = await client.POST('/api/runs', { body: { schema: 'dada', execution_mode: 'eco', input_text: 'Eine Blume auf der Wiese', user_id: user } })
  if (created.data === undefined) fail('create', created.response.status, created.error)
  const runId = created.data.run_id

  const uploaded = await client.POST('/api/runs/{run_id}/media', {
    params: { path: { run_id: runId } },
    body: { file: new Blob([image], { type: 'image/png' }), config: 'openapi_client' },
    bodySerializer: (body) => {
      const form = new FormData()
      if ('file' in body) {
        form.append('config', body.config)
        form.append('file', body.file, 'flower.png')
      }
      return form
    }
  })
  if (uploaded.data === undefined) fail('upload', uploaded.response.status, uploaded.error)

  const media = await client.GET('/api/media/image/{run_id}', { params: { path: { run_id: runId } }, parseAs: 'arrayBuffer' })
  if (media.data === undefined) fail('media', media.response.status, media.error)
  const range = await client.GET('/api/media/image/{run_id}/{index}', {
    params: { path: { run_id: runId, index: 0 } },
    headers: { Range: 'bytes=8-23' },
    parseAs: 'arrayBuffer'
  })
  if (range.data === undefined) fail('range', range.response.status, range.error)

  const listed = await client.GET('/api/runs', { params: { query: { user_id: user, media_type: 'image', schema: 'dada', limit: 10 } } })
  if (listed.data === undefined) fail('list', listed.response.status, listed.error)

  const runZip = await client.GET('/api/runs/{run_id}/export.zip', { params: { path: { run_id: runId } }, parseAs: 'arrayBuffer' })
  if (runZip.data === undefined) fail('run zip', runZip.response.status, runZip.error)
  const exported = await client.GET('/api/exports', {
    params: { query: { user_id: user, formats: 'folders,csv' } },
    headers: { Authorization: `Bearer ${adminToken}` },
    parseAs: 'arrayBuffer'
  })
  if (exported.data === undefined) fail('export', exported.response.status, exported.error)

  const executed = await client.POST('/api/schema/pipeline/execute', { body: { schema: 'bauhaus', input_text: 'Ein roter Kreis', execution_mode: 'fast', user_id: user } })
  if (executed.data === undefined) fail('execute', executed.response.status, executed.error)
  // Its 200 is JSON, or the event stream when asked for one: the types say both, the client picks.
  if (typeof executed.data === 'string') fail('execute answered an event stream', executed.response.status, executed.data)
  const events = await client.POST('/api/schema/pipeline/execute', {
    body: { schema: 'dada', input_text: 'Ein Haus am See', user_id: user },
    headers: { Accept: 'text/event-stream' },
    parseAs: 'text'
  })
  if (events.data === undefined) fail('events', events.response.status, events.error)

  return {
    runId,
    uploaded: { status: uploaded.response.status, type: uploaded.data.type, sha256: uploaded.data.sha256, fileSize: uploaded.data.file_size_bytes },
    media: { status: media.response.status, contentType: media.response.headers.get('content-type'), bytes: new Uint8Array(media.data) },
    range: { status: range.response.status, contentRange: range.response.headers.get('content-range'), bytes: new Uint8Array(range.data) },
    listed: { status: listed.response.status, runIds: listed.data.runs.map((run) => run.run_id), nextCursor: listed.data.next_cursor },
    runZip: { status: runZip.response.status, contentType: runZip.response.headers.get('content-type'), bytes: new Uint8Array(runZip.data) },
    export: { status: exported.response.status, contentType: exported.response.headers.get('content-type'), bytes: new Uint8Array(exported.data) },
    executed: {
      status: executed.response.status,
      runId: executed.data.run_id,
      chosen: executed.data.output_choices.chosen,
      mediaUrl: executed.data.media_output?.url ?? null
    },
    events: { status: events.response.status, contentType: events.response.headers.get('content-type'), text: events.data }
  }
}

/** Mistakes the generated types must catch; never called. */
export async function mistakes (client: ReturnType<typeof createClient<paths>>): Promise<void> {
  // @ts-expect-error an execution mode the API does not have
  await client.POST('/api/runs', { body: { schema: 'dada', execution_mode: 'turbo', input_text: 'x' } })
  // @ts-expect-error a run's path needs its run_id
  await client.GET('/api/runs/{run_id}', { params: { path: {} } })
  // @ts-expect-error a listing filter that does not exist
  await client.GET('/api/runs', { params: { query: { colour: 'red' } } })
  const answer = await client.POST('/api/schema/pipeline/execute', { body: { schema: 'dada', input_text: 'x' } })
  // @ts-expect-error a skipped entry's reason is one of three words
  const reason: 'busy' | undefined = answer.data?.output_choices.skipped[0]?.reason
  void reason
}
