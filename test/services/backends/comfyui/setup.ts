import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import type { Readable } from 'node:stream'
import { buffer } from 'node:stream/consumers'
import type { Test } from 'tap'
import { ComfyuiBackend, type ComfyuiBackendOptions } from '../../../../services/backends/comfyui/backend.js'
import type { ComfyuiClient } from '../../../../services/backends/comfyui/client.js'
import type { ComfyuiWorkflow } from '../../../../services/backends/comfyui/protocol.js'
import type { GenerationRequest, MediaItem } from '../../../../services/backends/types.js'
import { startFakeComfyui, type FakeComfyui, type FakeComfyuiBehaviour, type Graph } from '../../../fakes/comfyui.js'

// What the ComfyUI tests share: the shipped workflows, requests, a backend on the fake, and a reader of what it yields.

export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
export const RUN_ID = '0193f1e2-7c4a-7b9e-8d2f-4c1a2b3c4d5e'

export interface OutputConfig {
  name: string
  media_type: string
  backend: string
  params: { workflow: ComfyuiWorkflow }
  defaults: { width?: number, height?: number }
}

export const readConfig = (name: string): OutputConfig =>
  JSON.parse(readFileSync(new URL(`../../../../configs/outputs/${name}.json`, import.meta.url), 'utf8')) as OutputConfig
export const sd35 = readConfig('sd35_large')
export const stableAudio = readConfig('comfyui_audio')

/** The SD3.5 graph with changes: extra nodes, or edited inputs. */
export function imageWorkflow (change: (graph: ComfyuiWorkflow) => void = () => {}): ComfyuiWorkflow {
  const graph = structuredClone(sd35.params.workflow)
  change(graph)
  return graph
}

/** A decoded image piped to any output node: enough graph for the fake to run it. */
export function outputWorkflow (nodes: Record<string, { class_type: string, inputs?: Record<string, unknown> }>): ComfyuiWorkflow {
  return imageWorkflow((graph) => {
    delete graph['9']
    Object.assign(graph, nodes)
  })
}

export function request (workflow: ComfyuiWorkflow, overrides: Partial<GenerationRequest> = {}): GenerationRequest {
  return {
    run_id: RUN_ID,
    prompt: 'a red fox jumping over a snowy fence, crayon drawing',
    negative_prompt: 'blurry, text',
    seed: 1234567890123,
    width: 1024,
    height: 768,
    params: { workflow },
    ...overrides
  }
}

export interface Setup {
  fake: FakeComfyui
  backend: ComfyuiBackend
  client: ComfyuiClient
}

export async function setup (t: Test, behaviour: Partial<FakeComfyuiBehaviour> = {}, options: Omit<ComfyuiBackendOptions, 'baseUrl'> = {}): Promise<Setup> {
  const fake = await startFakeComfyui(behaviour)
  t.teardown(() => fake.close())
  const backend = new ComfyuiBackend({ baseUrl: fake.url, pollIntervalMs: 25, timeouts: { request: 2000, overall: 10_000 }, ...options })
  return { fake, backend, client: backend.client as ComfyuiClient }
}

export interface Collected {
  items: Array<{ bytes: Buffer, source: MediaItem['source'], media_type: MediaItem['media_type'] }>
  error: (Error & { code?: string }) | null
}

// Consumes like the storage service: each stream to its end before asking for the next item.
export async function collect (iterable: AsyncIterable<MediaItem>): Promise<Collected> {
  const items: Collected['items'] = []
  try {
    for await (const item of iterable) {
      const bytes = Buffer.isBuffer(item.body) ? item.body : await buffer(item.body as Readable)
      items.push({ bytes, source: item.source, media_type: item.media_type })
    }
  } catch (err) {
    return { items, error: err as Collected['error'] }
  }
  return { items, error: null }
}

/** output or temp: provenance the comfyui backend adds to the shared source record */
export const fileType = (source: MediaItem['source']): unknown => (source as { type?: unknown }).type

export function storedBytes (fake: FakeComfyui, source: MediaItem['source']): Buffer | undefined {
  return fake.file(String(fileType(source)), source.subfolder ?? '', source.original_filename ?? '')
}

export const lastPrompt = (fake: FakeComfyui): Graph => fake.prompts.at(-1)?.prompt as Graph

export async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}
