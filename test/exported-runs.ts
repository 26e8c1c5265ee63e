import type { Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { readFile } from 'node:fs/promises'
import { fixtures } from './fixtures/media.js'
import { build, tempRunsDir } from './helper.js'
import { FailingBackend, backendOutput, testConfigsDir, tinyImage } from './pipeline-setup.js'

export const ADMIN_TOKEN = 'an-admin-token-for-the-export-tests'
export const ADMIN = { authorization: `Bearer ${ADMIN_TOKEN}` }

/** A run the export tests made, with what a researcher would look for in the export. */
export interface MadeRun {
  run_id: string
  user_id: string | null
  schema: string
  input_text: string
  /** filenames of its outputs, in order */
  outputs: string[]
}

/**
 * A workshop's week in seven runs: three through the pipeline (one blocked by
 * the safety check, one failed after its first picture), the others made by a client with uploads of every kind
 * (PNG, JPEG, WebP, WAV, MP3, WebM, a 3D model), German texts with umlauts
 * and ß, one with characters no PDF standard font has, one with markup, one
 * without media.
 */
export async function workshopRuns (t: Test, env: Record<string, string> = {}): Promise<{ app: FastifyInstance, runsDir: string, runs: MadeRun[] }> {
  const runsDir = await tempRunsDir(t)
  const configsDir = await testConfigsDir(t, { outputs: [tinyImage, backendOutput('broken_image', 'broken')] })
  const app = await build(t, { RUNS_DIR: runsDir, CONFIGS_DIR: configsDir, ADMIN_TOKEN, ...env })
  // a backend that makes one picture, then fails
  app.backends.register(new FailingBackend('broken', undefined, 1), { concurrency: 1 })
  const runs: MadeRun[] = []

  const execute = async (user: string, input: string, output = 'tiny_image'): Promise<string> => {
    const res = await app.inject({ method: 'POST', url: '/api/schema/pipeline/execute', payload: { schema: 'dada', input_text: input, user_id: user, output_configs: [output] } })
    // every answer names its run, a failure's too
    return String(res.headers['x-run-id'])
  }
  const create = async (user: string | null, schema: string, input: string, transformed: string | null, files: string[]): Promise<string> => {
    const run = (await app.inject({ method: 'POST', url: '/api/runs', payload: { schema, execution_mode: 'eco', input_text: input, user_id: user } })).json()
    if (transformed !== null) await app.inject({ method: 'PATCH', url: `/api/runs/${run.run_id}`, payload: { transformed_text: transformed } })
    for (const file of files) await upload(run.run_id, file)
    return run.run_id
  }
  const upload = async (runId: string, file: string): Promise<void> => {
    const res = await app.inject({ method: 'POST', url: `/api/runs/${runId}/media`, payload: { source: 'data', data: (await readFile(file)).toString('base64'), config: 'upload_test' } })
    if (res.statusCode !== 201) throw new Error(`upload of ${file} answered ${res.statusCode}: ${res.body}`)
  }
  const made = async (runId: string): Promise<void> => {
    const metadata = (await app.inject({ url: `/api/runs/${runId}` })).json()
    runs.push({ run_id: runId, user_id: metadata.user_id, schema: metadata.schema, input_text: metadata.input_text, outputs: metadata.outputs.map((o: { filename: string }) => o.filename) })
  }

  const flower = await execute('Jörg', 'Eine Blume auf der Wiese, größer als die Bäume')
  await upload(flower, fixtures.wav.file)
  await made(flower)
  await made(await execute('Anna', 'ein Messer'))
  await made(await execute('Anna', 'Ein Vogel im Regen', 'broken_image'))
  await made(await create('Anna', 'bauhaus', 'Ein Haus aus Würfeln', 'Grüße aus Köln: süße Äpfel, Öl und Straßenbahn', [fixtures.jpeg.file, fixtures.mp3.file]))
  await made(await create('Jörg', 'bauhaus', 'Кошка 🐱 auf der Straße', 'A cat 🐱 on the street — “quoted”', [fixtures.png.file, fixtures.webm.file]))
  await made(await create(null, 'dada', 'Ohne Bild: nur Text, „Anführungszeichen“', null, []))
  // markup in a text is text: shown as typed, never run
  await made(await create('Émile', 'dada', 'Ein Würfel <b>im</b> Raum & "mehr" <img src=x onerror=alert(1)>', 'A cube in space', [fixtures.webp.file, fixtures.glb.file]))
  return { app, runsDir, runs }
}
