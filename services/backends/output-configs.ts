import { Type, type Static } from '@sinclair/typebox'
import { MediaType } from '../../schemas/media.js'
import { loadDataFiles } from '../data-files.js'
import { OutputConfigError } from '../errors.js'

export const OutputConfig = Type.Object({
  name: Type.String({ pattern: '^[a-z0-9][a-z0-9_-]*$', description: 'equals the file name' }),
  description: Type.String(),
  media_type: MediaType,
  backend: Type.String({ minLength: 1, description: 'the backend that runs it: builtin, comfyui, openai, openrouter, replicate' }),
  params: Type.Record(Type.String(), Type.Unknown(), { description: 'the backend\'s own parameters (a ComfyUI workflow, a model, …)' }),
  defaults: Type.Optional(Type.Object({
    width: Type.Optional(Type.Integer({ minimum: 16, maximum: 8192 })),
    height: Type.Optional(Type.Integer({ minimum: 16, maximum: 8192 }))
  }))
}, { additionalProperties: false })
export type OutputConfig = Static<typeof OutputConfig>

export async function loadOutputConfigs (dir: string): Promise<Map<string, OutputConfig>> {
  return await loadDataFiles(dir, OutputConfig, (path, problem) => new OutputConfigError(path, problem))
}
