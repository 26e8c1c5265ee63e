import { readdir, readFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { PipelineDefinitionError } from '../errors.js'

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

/**
 * Reads every `*.json` in `dir` as a pipeline definition, keyed by name and
 * sorted by name. Any broken file fails the whole load with the file and the
 * field named, so a typo shows at startup and not in a child's workshop.
 */
export async function loadPipelines (dir: string): Promise<Map<string, PipelineDefinition>> {
  let entries: string[]
  try {
    entries = await readdir(dir)
  } catch (err) {
    throw new PipelineDefinitionError(dir, `cannot read the folder (${(err as NodeJS.ErrnoException).code ?? String(err)})`)
  }
  const pipelines = new Map<string, PipelineDefinition>()
  for (const entry of entries.filter((e) => e.endsWith('.json')).sort()) {
    const path = join(dir, entry)
    const definition = parsePipelineDefinition(await readFile(path, 'utf8'), path)
    pipelines.set(definition.name, definition)
  }
  return pipelines
}

/** Validates one file's text; `path` names the file in errors and fixes the expected name. */
export function parsePipelineDefinition (text: string, path: string): PipelineDefinition {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw new PipelineDefinitionError(path, `not JSON (${(err as Error).message})`)
  }
  const firstError = Value.Errors(PipelineDefinition, value).First()
  if (firstError !== undefined) {
    throw new PipelineDefinitionError(path, `${fieldName(firstError.path)}: ${firstError.message}`)
  }
  const definition = value as PipelineDefinition
  const expectedName = basename(path, '.json')
  if (definition.name !== expectedName) {
    throw new PipelineDefinitionError(path, `name: "${definition.name}" must equal the file name "${expectedName}"`)
  }
  const template = definition.builtin.template
  if (!template.includes('{prompt}')) {
    throw new PipelineDefinitionError(path, 'builtin.template: must contain {prompt}')
  }
  for (const match of template.matchAll(/\{([^{}]*)\}/g)) {
    if (!(TEMPLATE_PLACEHOLDERS as readonly string[]).includes(match[1]!)) {
      throw new PipelineDefinitionError(path, `builtin.template: unknown placeholder {${match[1]!}} (known: ${TEMPLATE_PLACEHOLDERS.map((p) => `{${p}}`).join(', ')})`)
    }
  }
  return definition
}

// "/builtin/vocabulary/2" reads better as "builtin.vocabulary[2]".
function fieldName (pointer: string): string {
  if (pointer === '') return '(file)'
  return pointer.slice(1).split('/').map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((name, part) => /^\d+$/.test(part) ? `${name}[${part}]` : name === '' ? part : `${name}.${part}`, '')
}
