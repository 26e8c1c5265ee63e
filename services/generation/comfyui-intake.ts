import type { MediaType } from '../../schemas/media.js'
import type { MediaOutput } from '../../schemas/run.js'
import type { ComfyuiBackend } from '../backends/comfyui.js'
import { BackendFailedError, BackendUnavailableError, errorRecord } from '../errors.js'
import type { RunStorage } from '../storage/run-storage.js'
import { storeGeneratedMedia } from './store-generated.js'

/**
 * The seed's add_media_from_comfyui, for prompts someone else submitted:
 * every file of the prompt is stored (not only the first image). Returns the
 * new outputs in order. A failure after some files keeps them and is
 * recorded in the run; a failure before any file is thrown.
 */
export async function addMediaFromComfyui (
  storage: RunStorage,
  comfyui: ComfyuiBackend | undefined,
  runId: string,
  promptId: string,
  config: string,
  mediaType?: MediaType
): Promise<MediaOutput[]> {
  const reason = comfyui === undefined ? 'not registered' : comfyui.unavailableReason()
  if (comfyui === undefined || reason !== null) throw new BackendUnavailableError('comfyui', reason ?? '')
  await storage.getMetadata(runId)
  const { outputs, error } = await storeGeneratedMedia(storage, runId, comfyui.collect(promptId), {
    config,
    backend: 'comfyui',
    ...(mediaType !== undefined ? { media_type: mediaType } : {})
  })
  if (error !== null) {
    if (outputs.length === 0) throw error
    await storage.recordError(runId, { stage: 'media', ...errorRecord(error), details: { prompt_id: promptId, stored: outputs.length } })
  }
  if (outputs.length === 0) throw new BackendFailedError('comfyui', `prompt ${promptId} produced no files`)
  return outputs
}
