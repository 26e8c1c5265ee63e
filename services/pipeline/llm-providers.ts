import type { ExecutionMode, SafetyLevel } from '../../schemas/run.js'
import { BuiltinInterceptor } from './builtin-interceptor.js'
import { BuiltinSafetyChecker } from './builtin-safety.js'
import { BuiltinTranslator } from './builtin-translator.js'
import { LlmClient } from './llm-client.js'
import type { PipelineDefinition } from './pipeline-definitions.js'
import {
  TEXT_STEPS, type Interceptor, type SafetyChecker, type SafetyContext, type SafetyVerdict, type TextProviders, type TextStageResult,
  type TextStep, type Translator, type TranslationResult
} from './types.js'

const TRANSLATION_INSTRUCTION = 'You translate prompts for an image generator into English. Translate the user\'s text into natural English, ' +
  'keeping its meaning, names and details; add nothing and explain nothing. If the text is already English, return it unchanged. ' +
  'Answer with the English text only.'

const LEVEL_RULES: Record<Exclude<SafetyLevel, 'off'>, string> = {
  kids: 'The audience are children aged 6 to 12. Block weapons, fighting, killing, blood and injuries, horror and scary gore, ' +
    'nudity and anything sexual, alcohol, tobacco and drugs, swearing, hate, and self-harm. Fairy-tale creatures, friendly monsters and adventures are fine.',
  youth: 'The audience are teenagers aged 13 to 17. Allow mild fantasy action, spooky themes and historical subjects. ' +
    'Block killing and murder, explicit sexual content, illegal drugs, self-harm, strong swearing, hate and extreme gore.',
  adult: 'The audience are adults. Allow most artistic themes. Block only sexual content involving minors, extreme gore ' +
    '(dismemberment, torture shown in detail), sexual violence, hate speech and extremist symbols.'
}

const GENERIC_REASON = 'This idea is not something we can make a picture of here. Let\'s try another one!'

export class LlmTranslator implements Translator {
  readonly #client: LlmClient
  readonly #detector: BuiltinTranslator

  /** `detector` only names the source language; the model does the translating. */
  constructor (client: LlmClient, detector: BuiltinTranslator = new BuiltinTranslator()) {
    this.#client = client
    this.#detector = detector
  }

  async translate (text: string, signal?: AbortSignal): Promise<TranslationResult> {
    const answer = await this.#client.chat([
      { role: 'system', content: TRANSLATION_INSTRUCTION },
      { role: 'user', content: text }
    ], { temperature: 0, signal })
    const output = unquote(answer.content)
    return {
      output,
      provider: 'llm',
      model: answer.model,
      translated: squash(output) !== squash(text),
      source_language: this.#detector.detectLanguage(text).language,
      details: answerDetails(answer)
    }
  }
}

/** Rewrites the prompt with the pipeline's own instruction as the system message. */
export class LlmInterceptor implements Interceptor {
  readonly #client: LlmClient

  constructor (client: LlmClient) {
    this.#client = client
  }

  async transform (text: string, pipeline: PipelineDefinition, signal?: AbortSignal): Promise<TextStageResult> {
    const answer = await this.#client.chat([
      { role: 'system', content: pipeline.instruction },
      { role: 'user', content: text }
    ], { temperature: 0.7, signal })
    return {
      output: unquote(answer.content),
      provider: 'llm',
      model: answer.model,
      details: { pipeline: pipeline.name, ...answerDetails(answer) }
    }
  }
}

/**
 * Asks the model for a JSON verdict. When the answer is not one (models chat,
 * wrap, refuse), the word lists decide and the verdict says fallback_used.
 * Transport failures (timeout, 5xx) are thrown: a run is not waved through
 * because the checker was down.
 */
export class LlmSafetyChecker implements SafetyChecker {
  readonly #client: LlmClient
  readonly #fallback: BuiltinSafetyChecker

  constructor (client: LlmClient, fallback: BuiltinSafetyChecker = new BuiltinSafetyChecker()) {
    this.#client = client
    this.#fallback = fallback
  }

  async check (text: string, level: SafetyLevel, context: SafetyContext, signal?: AbortSignal): Promise<SafetyVerdict> {
    if (level === 'off') return this.#fallback.evaluate(text, level, context)
    const answer = await this.#client.chat([
      { role: 'system', content: safetyInstruction(level, context, this.#fallback.categories(context)) },
      { role: 'user', content: `Text to check:\n<<<\n${text}\n>>>` }
    ], { temperature: 0, signal })
    const parsed = parseVerdict(answer.content)
    if (parsed === null) {
      const verdict = this.#fallback.evaluate(text, level, context)
      return {
        ...verdict,
        fallback_used: true,
        details: {
          ...verdict.details,
          fallback_reason: 'the model\'s answer was not a readable verdict',
          llm_model: answer.model,
          llm_answer: answer.content.slice(0, 500)
        }
      }
    }
    return {
      allowed: parsed.allowed,
      reason: parsed.allowed ? null : parsed.reason ?? GENERIC_REASON,
      codes: parsed.allowed ? [] : parsed.codes,
      provider: 'llm',
      model: answer.model,
      details: { level, stage: context.stage, ...(parsed.allowed && parsed.reason !== null ? { model_note: parsed.reason } : {}), ...answerDetails(answer) }
    }
  }
}

export interface ParsedVerdict {
  allowed: boolean
  reason: string | null
  codes: string[]
}

/**
 * Finds {"allowed": bool, "reason", "codes"} in a model's answer: the whole
 * answer, a ```json fence, or the first object in the surrounding text that
 * has a boolean "allowed". Null when there is none.
 */
export function parseVerdict (answer: string): ParsedVerdict | null {
  const candidates = [answer.trim()]
  for (const fence of answer.matchAll(/```(?:json)?\s*([\s\S]*?)```/gi)) candidates.push(fence[1]!.trim())
  candidates.push(...jsonObjects(answer))
  for (const candidate of candidates) {
    let value: unknown
    try {
      value = JSON.parse(candidate)
    } catch {
      continue
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) continue
    const record = value as Record<string, unknown>
    if (typeof record.allowed !== 'boolean') continue
    const reason = typeof record.reason === 'string' && record.reason.trim() !== '' ? record.reason.trim() : null
    const codes = Array.isArray(record.codes)
      ? record.codes.filter((c): c is string => typeof c === 'string' && c.trim() !== '').map((c) => c.trim().slice(0, 64))
      : []
    return { allowed: record.allowed, reason, codes }
  }
  return null
}

// Balanced {...} substrings, strings and escapes respected.
function jsonObjects (text: string): string[] {
  const found: string[] = []
  for (let start = text.indexOf('{'); start !== -1 && found.length < 20; start = text.indexOf('{', start + 1)) {
    let depth = 0
    let inString = false
    for (let i = start; i < text.length; i++) {
      const char = text[i]
      if (inString) {
        if (char === '\\') i++
        else if (char === '"') inString = false
      } else if (char === '"') {
        inString = true
      } else if (char === '{') {
        depth++
      } else if (char === '}' && --depth === 0) {
        found.push(text.slice(start, i + 1))
        break
      }
    }
  }
  return found
}

/** `codes`: the word lists' categories for this context, so model and lists name things alike. */
function safetyInstruction (level: Exclude<SafetyLevel, 'off'>, context: SafetyContext, codes: string[]): string {
  const what = context.stage === 'input'
    ? 'a prompt a workshop participant typed'
    : `the final prompt about to be sent to a${context.media_type === 'audio' ? 'n' : ''} ${context.media_type ?? 'media'} generator`
  return 'You are the safety check of an art education platform used in workshops. ' +
    `You check ${what}. ${LEVEL_RULES[level]} ` +
    'Judge what the text asks to be shown, not single words out of context. ' +
    'Answer with one JSON object and nothing else: ' +
    '{"allowed": true or false, "reason": a short, kind sentence a child understands saying why it is blocked (null when allowed), ' +
    `"codes": the categories that apply, chosen from ${codes.join(', ')} (empty when allowed)}.`
}

function answerDetails (answer: { finish_reason: string | null, thinking: string | null }): Record<string, unknown> {
  const details: Record<string, unknown> = { finish_reason: answer.finish_reason }
  if (answer.finish_reason === 'length') details.truncated = true
  if (answer.thinking !== null) details.thinking_stripped = true
  return details
}

// Models like to put the whole answer in quotes.
function unquote (text: string): string {
  const match = /^(["'“„«])([\s\S]*)(["'”“»])$/.exec(text)
  return match === null ? text : match[2]!.trim()
}

function squash (text: string): string {
  return text.trim().replace(/\s+/g, ' ').toLowerCase()
}

/** Per execution mode, where its LLM is; a mode without baseUrl and model uses the builtin providers. */
export interface LlmModeConfig {
  baseUrl?: string | undefined
  model?: string | undefined
  apiKey?: string | undefined
}

export interface TextProvidersConfig {
  eco?: LlmModeConfig | undefined
  fast?: LlmModeConfig | undefined
  timeoutMs: number
  /** which steps the LLM runs when a mode has one (default: all); the others stay builtin */
  llmSteps?: readonly TextStep[]
}

/** The builtin providers: offline, deterministic, no configuration. */
export function createBuiltinTextProviders (): TextProviders {
  return builtinProviders(new BuiltinTranslator(), new BuiltinSafetyChecker())
}

function builtinProviders (translator: BuiltinTranslator, safety: BuiltinSafetyChecker): TextProviders {
  return { kind: 'builtin', model: null, llmSteps: [], translator, safety, interceptor: new BuiltinInterceptor() }
}

/**
 * The text providers each execution mode uses: eco its own LLM (usually a
 * local Ollama), fast a cloud endpoint, ultra the same as fast. A mode whose
 * baseUrl or model is missing uses the builtin providers, so a fresh clone
 * works offline.
 */
export function createTextProviders (config: TextProvidersConfig): Record<ExecutionMode, TextProviders> {
  const translator = new BuiltinTranslator()
  const safety = new BuiltinSafetyChecker()
  const builtin = builtinProviders(translator, safety)
  const forMode = (mode: LlmModeConfig | undefined): TextProviders => {
    const baseUrl = mode?.baseUrl?.trim() ?? ''
    const model = mode?.model?.trim() ?? ''
    if (baseUrl === '' || model === '') return builtin
    const steps = TEXT_STEPS.filter((step) => config.llmSteps?.includes(step) ?? true)
    if (steps.length === 0) return builtin
    const client = new LlmClient({ baseUrl, model, apiKey: mode?.apiKey?.trim(), timeoutMs: config.timeoutMs })
    return {
      kind: 'llm',
      model,
      llmSteps: steps,
      translator: steps.includes('translation') ? new LlmTranslator(client, translator) : translator,
      safety: steps.includes('safety') ? new LlmSafetyChecker(client, safety) : safety,
      interceptor: steps.includes('interception') ? new LlmInterceptor(client) : builtin.interceptor
    }
  }
  const fast = forMode(config.fast)
  return { eco: forMode(config.eco), fast, ultra: fast }
}
