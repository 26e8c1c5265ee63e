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
  return `${baseUrl.replace(/\/+$/, '')}/api/media/${output.type}/${metadata.run_id}/${n}`
}
