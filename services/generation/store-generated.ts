import type { MediaType } from '../../schemas/media.js'
import type { MediaOutput } from '../../schemas/run.js'
import type { MediaItem } from '../backends/types.js'
import type { RunStorage } from '../storage/run-storage.js'
import { BackendFailedError, isPublicError } from '../errors.js'

// What the storage says of bad bytes (too large, not media, cut off) is the client's fault for an
// upload, but the backend's for a generation: the child's request was fine.
const REFUSED_MEDIA = new Set([413, 415, 422])

export interface StoredGeneration {
  outputs: MediaOutput[]
  /** what ended the generation early, after the outputs that did get stored */
  error: unknown
}

/**
 * Stores every item a backend yields, one after the other (a stream must be
 * consumed before the next is asked for). A backend that fails after some
 * items keeps them: the failure is returned next to what was stored, for the
 * caller to record, never thrown away. Bytes the storage refuses (cut off,
 * not media, too large) are the backend's failure: BACKEND_FAILED (502).
 */
export async function storeGeneratedMedia (
  storage: RunStorage,
  runId: string,
  items: AsyncIterable<MediaItem>,
  options: {
    config: string
    backend: string
    /** expected type for items whose backend does not say */
    media_type?: MediaType
    onStored?: (output: MediaOutput) => void | Promise<void>
  }
): Promise<StoredGeneration> {
  const outputs: MediaOutput[] = []
  try {
    for await (const item of items) {
      const mediaType = item.media_type ?? options.media_type
      const output = await storage.addMedia(runId, item.body, {
        config: options.config,
        backend: options.backend,
        ...(mediaType !== undefined ? { media_type: mediaType } : {}),
        source: item.source
      })
      outputs.push(output)
      await options.onStored?.(output)
    }
    return { outputs, error: null }
  } catch (error) {
    // A type mismatch stays itself: the expected type is the caller's claim (a client's media_type, an output config's).
    const backendsFault = isPublicError(error) && REFUSED_MEDIA.has(error.statusCode) && error.code !== 'MEDIA_TYPE_MISMATCH'
    return { outputs, error: backendsFault ? new BackendFailedError(options.backend, `it produced media that cannot be stored (${error.code}: ${error.message})`) : error }
  }
}
