import { Type, type Static } from '@sinclair/typebox'
import { PipelineDefinitionError } from '../errors.js'
import { loadDataFiles } from '../data-files.js'

// A "pipeline" here is what the HTTP API calls a "schema" (dada, bauhaus, …);
// the code says pipeline so nobody mistakes it for a TypeBox schema.

export const TEMPLATE_PLACEHOLDERS = ['prompt', 'vocabulary', 'prefix', 'suffix'] as const

const OutputConfigNames = Type.Array(Type.String({ minLength: 1 }), {
  minItems: 1,
  description: 'output configs (configs/outputs/*.json) used when a request names none'
})

export const PipelineDefinition = Type.Object({
  name: Type.String({ pattern: '^[a-z0-9][a-z0-9_-]*$', description: 'the id the API takes as "schema"; equals the file name' }),
  title: Type.String({ minLength: 1 }),
  description: Type.String(),
  instruction: Type.String({ minLength: 1, description: 'system prompt for the LLM interceptor' }),
  negative_prompt: Type.Optional(Type.String({ description: 'what this pipeline\'s media should avoid, for generators that take one ({{negative_prompt}} in ComfyUI workflows); a request may give its own' })),
  builtin: Type.Object({
    template: Type.String({ minLength: 1, description: 'contains {prompt}; may contain {vocabulary}, {prefix}, {suffix}' }),
    vocabulary: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }),
    vocabulary_picks: Type.Optional(Type.Integer({ minimum: 1, maximum: 8, description: 'how many vocabulary entries one prompt gets (default 3)' })),
    prefixes: Type.Optional(Type.Array(Type.String())),
    suffixes: Type.Optional(Type.Array(Type.String()))
  }, { additionalProperties: false, description: 'what the offline interceptor applies' }),
  default_outputs: Type.Object({
    eco: OutputConfigNames,
    fast: OutputConfigNames,
    ultra: OutputConfigNames
  }, { additionalProperties: false })
}, { additionalProperties: false })

export type PipelineDefinition = Static<typeof PipelineDefinition>

/** Every pipeline file of `dir`, by name; a broken file stops the load with its file and field named. */
export async function loadPipelines (dir: string): Promise<Map<string, PipelineDefinition>> {
  return await loadDataFiles(dir, PipelineDefinition, (path, problem) => new PipelineDefinitionError(path, problem), checkTemplate)
}

function checkTemplate (definition: PipelineDefinition, path: string): void {
  const template = definition.builtin.template
  if (!template.includes('{prompt}')) {
    throw new PipelineDefinitionError(path, 'builtin.template: must contain {prompt}')
  }
  for (const match of template.matchAll(/\{([^{}]*)\}/g)) {
    if (!(TEMPLATE_PLACEHOLDERS as readonly string[]).includes(match[1]!)) {
      throw new PipelineDefinitionError(path, `builtin.template: unknown placeholder {${match[1]!}} (known: ${TEMPLATE_PLACEHOLDERS.map((p) => `{${p}}`).join(', ')})`)
    }
  }
}
