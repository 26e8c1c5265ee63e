import type { Test } from 'tap'
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PNG } from 'pngjs'
import { BackendFailedError } from '../services/errors.js'
import type { GenerationRequest, GeneratorBackend, MediaItem } from '../services/backends/types.js'

const CONFIGS = new URL('../configs/', import.meta.url)

/** A builtin image small enough that fifty of them take no time. */
export const tinyImage = {
  name: 'tiny_image',
  description: 'small procedural picture (tests)',
  media_type: 'image',
  backend: 'builtin',
  params: { media_type: 'image' },
  defaults: { width: 64, height: 64 }
}

/** An output config for a backend a test registers itself. */
export function backendOutput (name: string, backend: string, mediaType = 'image'): Record<string, unknown> {
  return { name, description: `${backend} (tests)`, media_type: mediaType, backend, params: {}, defaults: { width: 64, height: 64 } }
}

/**
 * A copy of configs/ with extra output configs and pipelines, removed after
 * the test: CONFIGS_DIR for an app that needs test-only definitions.
 */
export async function testConfigsDir (t: Test, extra: { outputs?: Array<Record<string, unknown>>, pipelines?: Array<Record<string, unknown>> } = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'runstore-configs-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  for (const kind of ['outputs', 'pipelines'] as const) {
    await mkdir(join(dir, kind))
    for (const file of await readdir(new URL(`${kind}/`, CONFIGS))) {
      await copyFile(new URL(`${kind}/${file}`, CONFIGS), join(dir, kind, file))
    }
    for (const definition of extra[kind] ?? []) {
      await writeFile(join(dir, kind, `${String(definition.name)}.json`), JSON.stringify(definition, null, 2))
    }
  }
  return dir
}

/** The dada pipeline file with changes, as a new pipeline. */
export async function pipelineLike (name: string, change: (definition: any) => void): Promise<Record<string, unknown>> {
  const definition = JSON.parse(await readFile(new URL('pipelines/dada.json', CONFIGS), 'utf8'))
  definition.name = name
  change(definition)
  return definition
}

/** A 2x2 PNG whose colour comes from the prompt and seed: every request its own bytes. */
export function smallPng (prompt: string, seed: number): Buffer {
  const png = new PNG({ width: 2, height: 2 })
  const hash = Buffer.from(`${prompt}\u0000${seed}`)
  for (let i = 0; i < png.data.length; i += 4) {
    png.data[i] = hash.reduce((a, b) => (a * 31 + b) & 255, 7)
    png.data[i + 1] = seed & 255
    png.data[i + 2] = (seed >>> 8) & 255
    png.data[i + 3] = 255
  }
  return PNG.sync.write(png)
}

/**
 * A backend that holds every generation until the test opens the gate, so a
 * test knows a run is mid-generation without timing anything. It stops
 * waiting when the request is aborted.
 */
export class GatedBackend implements GeneratorBackend {
  readonly name: string
  readonly requests: GenerationRequest[] = []
  #open = false
  #release: Array<() => void> = []
  #arrivals: Array<{ count: number, resolve: () => void }> = []

  constructor (name = 'gated') {
    this.name = name
  }

  unavailableReason (): string | null {
    return null
  }

  /** Resolves once `count` generations have started. */
  async started (count = 1): Promise<void> {
    if (this.requests.length >= count) return
    await new Promise<void>((resolve) => this.#arrivals.push({ count, resolve }))
  }

  open (): void {
    this.#open = true
    for (const release of this.#release.splice(0)) release()
  }

  async * generate (request: GenerationRequest): AsyncGenerator<MediaItem> {
    this.requests.push(request)
    for (const arrival of this.#arrivals.filter((a) => this.requests.length >= a.count)) {
      this.#arrivals.splice(this.#arrivals.indexOf(arrival), 1)
      arrival.resolve()
    }
    if (!this.#open) {
      await new Promise<void>((resolve, reject) => {
        this.#release.push(resolve)
        request.signal?.addEventListener('abort', () => { reject(request.signal!.reason) }, { once: true })
      })
    }
    yield { body: smallPng(request.prompt, request.seed), media_type: 'image', source: { kind: this.name } }
  }
}

/** A backend that fails in a given way, after yielding `before` images. */
export class FailingBackend implements GeneratorBackend {
  readonly name: string
  readonly #error: () => Error
  readonly #before: number

  constructor (name: string, error: () => Error = () => new BackendFailedError(name, 'out of memory'), before = 0) {
    this.name = name
    this.#error = error
    this.#before = before
  }

  unavailableReason (): string | null {
    return null
  }

  async * generate (request: GenerationRequest): AsyncGenerator<MediaItem> {
    for (let i = 0; i < this.#before; i++) {
      yield { body: smallPng(`${request.prompt} ${i}`, request.seed), media_type: 'image', source: { kind: this.name } }
    }
    throw this.#error()
  }
}

export interface SseEvent {
  event: string
  data: any
}

/** Server-Sent Events frames, comments skipped. */
export function parseSse (text: string): SseEvent[] {
  const events: SseEvent[] = []
  for (const frame of text.split('\n\n')) {
    let event = 'message'
    const data: string[] = []
    for (const line of frame.split('\n')) {
      if (line.startsWith('event: ')) event = line.slice(7)
      else if (line.startsWith('data: ')) data.push(line.slice(6))
    }
    if (data.length > 0) events.push({ event, data: JSON.parse(data.join('\n')) })
  }
  return events
}

/** The events of a run with one output, in order; stage events carry their stage. */
export const EVENTS_OF_ONE_OUTPUT = [
  'run_created',
  'stage_started:translation', 'stage_completed:translation',
  'stage_started:safety', 'stage_completed:safety',
  'stage_started:interception', 'stage_completed:interception',
  'stage_started:pre_output_safety', 'stage_completed:pre_output_safety',
  'stage_started:generation', 'media_stored', 'stage_completed:generation',
  'completed'
]
