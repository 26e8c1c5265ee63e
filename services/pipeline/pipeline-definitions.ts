import { Type, type Static } from '@sinclair/typebox'
import { PipelineDefinitionError } from '../errors.js'
import { loadDataFiles } from '../data-files.js'

// A "pipeline" here is what the HTTP API calls a "schema" (dada, bauhaus, …);
// the code says pipeline so nobody mistakes it for a TypeBox schema.

export const TEMPLATE_PLACEHOLDERS = ['prompt', 'vocabulary', 'prefix', 'suffix'] as const

const OutputConfigName = Type.String({ minLength: 1, description: 'an output config (configs/outputs/*.json)' })
const OutputGroup = Type.Array(OutputConfigName, { minItems: 1, uniqueItems: true, description: 'output configs that run together, side by side (e.g. an image and a sound)' })

/**
 * What a mode runs when a request names no output configs: a preference list,
 * whose first entry that can run now is taken. An entry is one output config
 * or a group that runs together; a single name stands for a list of one.
 */
export const ModeOutputs = Type.Union([
  OutputConfigName,
  Type.Array(Type.Union([OutputConfigName, OutputGroup]), { minItems: 1 })
], { description: 'an output config\'s name, or a non-empty list in order of preference (the first entry that can run now is taken) whose entries are names or non-empty groups of different names that run together' })
export type ModeOutputs = Static<typeof ModeOutputs>

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
    eco: ModeOutputs,
    fast: ModeOutputs,
    ultra: ModeOutputs
  }, { additionalProperties: false })
}, { additionalProperties: false })

export type PipelineDefinition = Static<typeof PipelineDefinition>

/** A mode's default outputs as a list of entries, each a list of the configs that run together. */
export function outputPreferences (outputs: ModeOutputs): string[][] {
  if (typeof outputs === 'string') return [[outputs]]
  return outputs.map((entry) => typeof entry === 'string' ? [entry] : entry)
}

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
