import type { MediaType } from '../../schemas/media.js'
import type { MediaOutput } from '../../schemas/run.js'
import type { BackendRegistry } from '../backends/registry.js'
import { BackendFailedError, BackendUnavailableError, errorRecord } from '../errors.js'
import type { RunStorage } from '../storage/run-storage.js'
import { storeGeneratedMedia } from './store-generated.js'

/**
 * The seed's add_media_from_comfyui, for any backend that can collect a job
 * someone else submitted (ComfyUI: a prompt from its web UI): every file of
 * the job is stored (not only the first image). Returns the new outputs in
 * order. A failure after some files keeps them and is recorded in the run; a
 * failure before any file is thrown. BACKEND_UNAVAILABLE (503) when the
 * backend is missing, not configured, or cannot collect.
 */
export async function addMediaFromPrompt (
  storage: RunStorage,
  backends: Pick<BackendRegistry, 'backend'>,
  backendName: string,
  runId: string,
  promptId: string,
  config: string,
  mediaType?: MediaType
): Promise<MediaOutput[]> {
  const backend = backends.backend(backendName)
  if (backend === undefined) throw new BackendUnavailableError(backendName, 'not registered')
  const reason = backend.unavailableReason()
  if (reason !== null) throw new BackendUnavailableError(backendName, reason)
  if (backend.collect === undefined) throw new BackendUnavailableError(backendName, 'it cannot collect a job submitted elsewhere')
  await storage.getMetadata(runId)
  const { outputs, error } = await storeGeneratedMedia(storage, runId, backend.collect(promptId), {
    config,
    backend: backendName,
    ...(mediaType !== undefined ? { media_type: mediaType } : {})
  })
  if (error !== null) {
    if (outputs.length === 0) throw error
    await storage.recordError(runId, { stage: 'media', ...errorRecord(error), details: { prompt_id: promptId, stored: outputs.length } })
  }
  if (outputs.length === 0) throw new BackendFailedError(backendName, `prompt ${promptId} produced no files`)
  return outputs
}
