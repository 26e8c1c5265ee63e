import { randomBytes, randomUUID } from 'node:crypto'
import type { Readable } from 'node:stream'
import type { MediaSourceRecord } from '../../../schemas/run.js'
import { BackendFailedError, BackendUnavailableError, ComfyuiFileMissingError } from '../../errors.js'
import { isRecord } from '../../json.js'
import { checkParams, object, type ParamsSpec } from '../params.js'
import type { BackendFactory, GenerationRequest, GeneratorBackend, MediaItem } from '../types.js'
import { ComfyuiClient, type ComfyuiClientOptions } from './client.js'
import {
  checkWorkflow, COMFYUI, describeExecutionFailure, describeFile, fillWorkflow, listOutputFiles, readApiWorkflow,
  type ComfyuiFileRef, type ComfyuiHistoryEntry
} from './protocol.js'

const PARAMS: ParamsSpec = {
  /** an API-format workflow ("Export (API)") with placeholders; checkWorkflow says what else it needs */
  workflow: object
}

export interface ComfyuiBackendOptions extends Omit<ComfyuiClientOptions, 'baseUrl'> {
  /** COMFYUI_URL; without it the backend is unavailable */
  baseUrl?: string | undefined
  /** first part of every filename_prefix: files land in ComfyUI's output/<root>/ (default runstore) */
  filenamePrefixRoot?: string
  /**
   * With a queue shared by instances: a prompt is submitted only once ComfyUI
   * holds fewer than this many (COMFYUI_CONCURRENCY). An instance that died
   * frees its slot at once, while the prompt it had submitted runs on; the
   * GPU's own queue tells, and whoever takes the slot waits for that prompt.
   */
  room?: number
}

/**
 * Runs an output config's API-format workflow on ComfyUI and yields every file
 * it produced, as streams of the original bytes.
 */
export class ComfyuiBackend implements GeneratorBackend {
  readonly name = COMFYUI
  readonly client: ComfyuiClient | null
  readonly #prefixRoot: string
  readonly #room: number | undefined

  constructor (options: ComfyuiBackendOptions) {
    const { baseUrl, filenamePrefixRoot, room, ...clientOptions } = options
    this.client = baseUrl ? new ComfyuiClient({ ...clientOptions, baseUrl }) : null
    this.#prefixRoot = filenamePrefixRoot ?? 'runstore'
    this.#room = room
  }

  unavailableReason (): string | null {
    return this.client ? null : 'COMFYUI_URL is not set'
  }

  validateParams (params: Record<string, unknown>): void {
    checkParams(this.name, params, PARAMS)
    checkWorkflow(params['workflow'])
  }

  async * generate (request: GenerationRequest): AsyncIterable<MediaItem> {
    const client = this.#requireClient()
    // A prefix nobody used before: ComfyUI answers an identical prompt from
    // its cache, pointing at the old files instead of writing new ones.
    const filenamePrefix = `${this.#prefixRoot}/${request.run_id}_${randomBytes(4).toString('hex')}`
    const workflow = fillWorkflow(readApiWorkflow(request.params.workflow), {
      prompt: request.prompt,
      negative_prompt: request.negative_prompt ?? '',
      seed: request.seed,
      width: request.width,
      height: request.height,
      filename_prefix: filenamePrefix
    })
    const clientId = randomUUID()
    if (this.#room !== undefined) await client.waitForRoom(this.#room, request.signal)
    const { prompt_id: promptId } = await client.submit(workflow, { promptId: randomUUID(), clientId })
    let entry: ComfyuiHistoryEntry
    try {
      entry = await client.waitForCompletion(promptId, clientId, request.signal)
    } catch (err) {
      // Don't leave the GPU busy with work nobody will collect.
      await client.cancel(promptId).catch(() => {})
      throw err
    }
    yield * this.#media(client, promptId, entry, request.signal)
  }

  /** Every output of a prompt submitted elsewhere (e.g. by the ComfyUI web UI). */
  async * collect (promptId: string, signal?: AbortSignal): AsyncIterable<MediaItem> {
    const client = this.#requireClient()
    yield * this.#media(client, promptId, await client.collectOutputs(promptId, signal), signal)
  }

  async health (): Promise<{ ok: boolean, details?: unknown }> {
    if (!this.client) return { ok: false, details: { error: this.unavailableReason() } }
    try {
      const stats = await this.client.systemStats()
      const system = isRecord(stats.system) ? stats.system : {}
      const devices = Array.isArray(stats.devices) ? stats.devices.filter(isRecord).map((d) => d.name) : []
      return { ok: true, details: { comfyui_version: system.comfyui_version, devices } }
    } catch (err) {
      return { ok: false, details: { error: (err as Error).message } }
    }
  }

  #requireClient (): ComfyuiClient {
    if (!this.client) throw new BackendUnavailableError(COMFYUI, 'COMFYUI_URL is not set')
    return this.client
  }

  async * #media (client: ComfyuiClient, promptId: string, entry: ComfyuiHistoryEntry, signal?: AbortSignal): AsyncIterable<MediaItem> {
    const files = listOutputFiles(entry)
    const missing: string[] = []
    for (const file of files) {
      let body: Readable
      try {
        body = await client.download(file, signal)
      } catch (err) {
        // A vanished temp file must not cost the user the other outputs.
        if (err instanceof ComfyuiFileMissingError) {
          missing.push(describeFile(file))
          continue
        }
        throw err
      }
      // `type` (output or temp) is provenance beyond the shared schema's named fields.
      const source: MediaSourceRecord & { type: ComfyuiFileRef['type'] } = {
        kind: COMFYUI, prompt_id: promptId, node_id: file.node_id, original_filename: file.filename, subfolder: file.subfolder, type: file.type
      }
      yield { body, source }
    }
    const problems: string[] = []
    const failure = describeExecutionFailure(entry)
    if (failure) problems.push(failure)
    if (missing.length > 0) problems.push(`ComfyUI no longer has ${missing.join(', ')}`)
    if (problems.length === 0 && files.length === 0) problems.push('it finished without any output file')
    if (problems.length > 0) throw new BackendFailedError(COMFYUI, `prompt ${promptId}: ${problems.join('; ')}`)
  }
}

export const comfyuiBackend: BackendFactory = {
  name: COMFYUI,
  concurrency: (config) => config.COMFYUI_CONCURRENCY,
  create: (config, { fetchPolicy }) => {
    // The lab's own ComfyUI is the one private host media may always come from.
    if (config.COMFYUI_URL !== undefined) fetchPolicy.allow(new URL(config.COMFYUI_URL).hostname)
    return new ComfyuiBackend({
      baseUrl: config.COMFYUI_URL,
      timeouts: { overall: config.COMFYUI_TIMEOUT_MS, request: config.COMFYUI_REQUEST_TIMEOUT_MS },
      // Only with the shared queue (DATABASE_URL): alone, this process's slots are the truth, and nothing it did not submit is waited for.
      ...(config.DATABASE_URL === undefined ? {} : { room: config.COMFYUI_CONCURRENCY })
    })
  }
}
