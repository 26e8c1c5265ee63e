import type { MediaType } from '../../schemas/media.js'
import type { MediaOutput, RunMetadata } from '../../schemas/run.js'

/**
 * The URL a client shows an output with: /api/media/<type>/<run_id>/<n>, where
 * n counts outputs of that type (what the media routes take), not outputs[].
 */
export function mediaUrl (metadata: RunMetadata, output: MediaOutput, baseUrl = ''): string {
  let n = 0
  for (const o of metadata.outputs) {
    if (o === output || o.index === output.index) break
    if (o.type === output.type) n++
  }
  return outputUrl(metadata.run_id, output.type, n, baseUrl)
}

/** The URL of the n-th output of a type (0-based among that type). */
export function outputUrl (runId: string, type: MediaType, n: number, baseUrl = ''): string {
  return `${baseUrl.replace(/\/+$/, '')}/api/media/${type}/${runId}/${n}`
}
