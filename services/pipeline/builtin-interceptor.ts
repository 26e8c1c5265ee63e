import { createHash } from 'node:crypto'
import type { PipelineDefinition } from './pipeline-definitions.js'
import type { Interceptor, TextStageResult } from './types.js'

const DEFAULT_PICKS = 3

/**
 * The offline interception stage: puts the prompt into the pipeline's
 * template and adds words from its vocabulary. The choice is seeded by the
 * pipeline and the text, so a prompt always comes out the same way (a class
 * can compare results) and two pipelines give clearly different prompts.
 */
export class BuiltinInterceptor implements Interceptor {
  async transform (text: string, pipeline: PipelineDefinition, signal?: AbortSignal): Promise<TextStageResult> {
    signal?.throwIfAborted()
    return this.apply(text, pipeline)
  }

  apply (text: string, pipeline: PipelineDefinition): TextStageResult {
    const { template, vocabulary, prefixes = [], suffixes = [] } = pipeline.builtin
    const seed = createHash('sha256').update(pipeline.name).update('\u0000').update(text).digest().readUInt32BE(0)
    const random = mulberry32(seed)
    const picks = pickDistinct(vocabulary, Math.min(pipeline.builtin.vocabulary_picks ?? DEFAULT_PICKS, vocabulary.length), random)
    const prefix = prefixes.length > 0 ? prefixes[Math.floor(random() * prefixes.length)]! : ''
    const suffix = suffixes.length > 0 ? suffixes[Math.floor(random() * suffixes.length)]! : ''
    const promptStartsOutput = template.trimStart().startsWith('{prompt}') || (template.trimStart().startsWith('{prefix}') && prefix === '')
    const prompt = asClause(text, !promptStartsOutput)
    const listed = listing(picks)
    let output = template.replace(/\{(prompt|vocabulary|prefix|suffix)\}/g, (_placeholder, name: string) => {
      switch (name) {
        case 'prompt': return prompt
        case 'vocabulary': return listed
        case 'prefix': return prefix
        default: return suffix
      }
    })
    if (!template.includes('{vocabulary}')) output = `${output}, ${listed}`
    return {
      output: tidy(output),
      provider: 'builtin',
      model: null,
      details: { pipeline: pipeline.name, vocabulary: picks, prefix: prefix === '' ? null : prefix, suffix: suffix === '' ? null : suffix, seed }
    }
  }
}

// Small, fast and the same on every platform: all a vocabulary shuffle needs.
function mulberry32 (seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6D2B79F5) >>> 0
    let x = state
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

function pickDistinct (items: string[], count: number, random: () => number): string[] {
  const pool = [...items]
  const picked: string[] = []
  while (picked.length < count && pool.length > 0) {
    picked.push(pool.splice(Math.floor(random() * pool.length), 1)[0]!)
  }
  return picked
}

function listing (items: string[]): string {
  if (items.length <= 1) return items.join('')
  return `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]!}`
}

// Inside a sentence "A flower on the meadow." reads as "a flower on the
// meadow"; only determiners are lowered, so "Berlin", "NASA" and "I" keep
// their capitals.
const DETERMINERS = new Set(['a', 'an', 'the', 'some', 'many', 'one', 'two', 'three', 'my', 'your', 'our', 'his', 'her', 'their', 'this', 'that', 'these', 'those', 'every', 'all'])

function asClause (text: string, inside: boolean): string {
  const clause = text.trim().replace(/\s+/g, ' ').replace(/[.!?;:,]+$/, '')
  const firstWord = /^\S+/.exec(clause)?.[0] ?? ''
  if (inside && /^\p{Lu}/u.test(firstWord) && DETERMINERS.has(firstWord.toLowerCase())) return clause.charAt(0).toLowerCase() + clause.slice(1)
  return clause
}

// Empty placeholders leave doubled spaces and commas behind.
function tidy (text: string): string {
  return text
    .replace(/\s+/g, ' ')
    .replace(/\s+([,.;:!?])/g, '$1')
    .replace(/([,;:])(?:\s*[,;:])+/g, '$1')
    .replace(/^[\s,;:]+|[\s,;:]+$/g, '')
}
