import type { MediaType } from '../../schemas/media.js'
import type { SafetyLevel } from '../../schemas/run.js'
import type { PipelineDefinition } from './pipeline-definitions.js'

/** builtin: offline word lists and templates; llm: an OpenAI-compatible chat server */
export type TextProviderKind = 'builtin' | 'llm'

/** What one text stage produced, in the shape a stage record keeps. */
export interface TextStageResult {
  output: string
  provider: TextProviderKind
  /** the LLM model that answered; null for builtin providers */
  model: string | null
  details?: Record<string, unknown>
}

export interface TranslationResult extends TextStageResult {
  /** false when the text passed through unchanged (already English, or not translatable) */
  translated: boolean
  /** ISO 639-1 code of the detected language, null when it could not be told */
  source_language: string | null
}

export interface SafetyVerdict {
  allowed: boolean
  /** a sentence a child understands; null when allowed */
  reason: string | null
  /** what blocked it, e.g. violence.weapon; empty when allowed */
  codes: string[]
  provider: TextProviderKind
  model: string | null
  /** the LLM's answer could not be read, so the word lists decided */
  fallback_used?: boolean
  details?: Record<string, unknown>
}

export interface SafetyContext {
  /** input: the user's (translated) text; pre_output: the prompt about to go to a generator */
  stage: 'input' | 'pre_output'
  media_type?: MediaType
}

export interface Translator {
  translate (text: string, signal?: AbortSignal): Promise<TranslationResult>
}

export interface SafetyChecker {
  check (text: string, level: SafetyLevel, context: SafetyContext, signal?: AbortSignal): Promise<SafetyVerdict>
}

export interface Interceptor {
  transform (text: string, pipeline: PipelineDefinition, signal?: AbortSignal): Promise<TextStageResult>
}

/** The three text stages as one execution mode runs them. */
export const TEXT_STEPS = ['translation', 'safety', 'interception'] as const
export type TextStep = typeof TEXT_STEPS[number]

export interface TextProviders {
  kind: TextProviderKind
  model: string | null
  /** the steps an LLM runs; empty for builtin */
  llmSteps: TextStep[]
  translator: Translator
  safety: SafetyChecker
  interceptor: Interceptor
}
