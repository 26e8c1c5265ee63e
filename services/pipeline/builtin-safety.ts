import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { MediaType } from '../../schemas/media.js'
import type { SafetyLevel } from '../../schemas/run.js'
import safetyWordsFile from './data/safety-words.json' with { type: 'json' }
import type { SafetyChecker, SafetyContext, SafetyVerdict } from './types.js'

const BlockingLevel = Type.Union([Type.Literal('kids'), Type.Literal('youth'), Type.Literal('adult'), Type.Null()])
const Words = Type.Optional(Type.Array(Type.String({ minLength: 1 })))

export const SafetyWordLists = Type.Object({
  about: Type.Optional(Type.String()),
  allow: Type.Object({ words: Type.Array(Type.String()), phrases: Type.Array(Type.String()) }),
  lists: Type.Array(Type.Object({
    code: Type.String({ minLength: 1 }),
    min_level: BlockingLevel,
    reason: Type.Optional(Type.String()),
    reason_de: Type.Optional(Type.String()),
    /** only for prompts about to go to generators of these media types (stage 3); absent: for every check */
    media_types: Type.Optional(Type.Array(MediaType, { minItems: 1 })),
    en: Words,
    de: Words,
    de_stems: Words,
    de_tails: Words
  }, { additionalProperties: false })),
  combinations: Type.Array(Type.Object({
    code: Type.String({ minLength: 1 }),
    min_level: BlockingLevel,
    all_of: Type.Array(Type.String()),
    any_of: Type.Array(Type.String())
  }, { additionalProperties: false }))
})
export type SafetyWordLists = Static<typeof SafetyWordLists>

const STRICTNESS: Record<SafetyLevel, number> = { off: 0, adult: 1, youth: 2, kids: 3 }

// What may follow a German stem ("Waffen", "blutig", "Vergewaltigung") without
// it being a compound; anything of three letters or more after the stem is
// taken as the second half of a compound ("Waffenhandel").
const STEM_ENDINGS = ['', 'e', 'en', 'n', 's', 'es', 'er', 'ern', 'em', 't', 'te', 'ten', 'ung', 'ungen', 'ig', 'ige', 'igen', 'iger', 'iges']
const MIN_COMPOUND_PART = 3

const LEET: Record<string, string> = { 0: 'o', 1: 'i', 3: 'e', 4: 'a', 5: 's', 7: 't', '@': 'a', $: 's' }
const TOKEN = /[\p{L}\p{N}]+/gu

const GENERIC_REASON = 'This idea is not something we can make a picture of here. Let\'s try another one!'

interface CompiledList {
  code: string
  minLevel: SafetyLevel | null
  severity: number
  reason: string
  reasonDe: string | null
  mediaTypes: ReadonlySet<MediaType> | null
}

interface Phrase {
  words: string[]
  list: CompiledList
  term: string
}

interface Match {
  code: string
  minLevel: SafetyLevel | null
  term: string
  found: string
}

/**
 * The offline safety stage: word lists per category, each blocked from a
 * minimum safety level on (see data/safety-words.json). Matches whole words,
 * so "grasshopper" is not "ass"; German stems also match compounds, so
 * "Waffenhandel" is "Waffe", with an allow list for harmless compounds
 * ("Schwertfisch"). Before matching it undoes the usual disguises: case,
 * umlaut spellings, accents, leetspeak (k1ll, $hit), stretched letters
 * (kiiiill), spelling out (k.i.l.l, k i l l) and masked letters (f*ck, sh#t),
 * where each mask stands for one letter of a listed word.
 */
export class BuiltinSafetyChecker implements SafetyChecker {
  readonly #exact = new Map<string, Array<{ list: CompiledList, term: string }>>()
  readonly #phrases = new Map<string, Phrase[]>()
  readonly #stems: Array<{ stem: string, list: CompiledList }> = []
  readonly #tails: Array<{ tail: string, list: CompiledList }> = []
  readonly #allowWords: Set<string>
  readonly #allowPhrases: string[][]
  readonly #lists = new Map<string, CompiledList>()
  readonly #combinations: Array<{ code: string, minLevel: SafetyLevel | null, allOf: string[], anyOf: string[] }>

  constructor (data: SafetyWordLists = defaultWordLists()) {
    data.lists.forEach((entry, severity) => {
      const list: CompiledList = {
        code: entry.code,
        minLevel: entry.min_level,
        severity,
        reason: entry.reason ?? GENERIC_REASON,
        reasonDe: entry.reason_de ?? null,
        mediaTypes: entry.media_types === undefined ? null : new Set(entry.media_types)
      }
      if (!this.#lists.has(list.code)) this.#lists.set(list.code, list)
      for (const term of entry.en ?? []) this.#addTerm(term, list, englishForms)
      for (const term of entry.de ?? []) this.#addTerm(term, list, (word) => [word])
      for (const stem of entry.de_stems ?? []) this.#stems.push({ stem: foldWord(stem), list })
      for (const tail of entry.de_tails ?? []) this.#tails.push({ tail: foldWord(tail), list })
    })
    this.#combinations = data.combinations.map((combination) => {
      if (!this.#lists.has(combination.code)) throw new Error(`safety combination ${combination.code} has no list with that code for its reason`)
      return { code: combination.code, minLevel: combination.min_level, allOf: combination.all_of, anyOf: combination.any_of }
    })
    this.#allowWords = new Set(data.allow.words.map(foldWord))
    this.#allowPhrases = data.allow.phrases.map((phrase) => tokensOf(phrase))
  }

  /** The codes a verdict in this context can name, in list order: what the LLM checker offers its model. */
  categories (context: SafetyContext): string[] {
    return [...this.#lists.values()].filter((list) => list.minLevel !== null && concerns(list, context)).map((list) => list.code)
  }

  async check (text: string, level: SafetyLevel, context: SafetyContext, signal?: AbortSignal): Promise<SafetyVerdict> {
    signal?.throwIfAborted()
    return this.evaluate(text, level, context)
  }

  evaluate (text: string, level: SafetyLevel, context: SafetyContext): SafetyVerdict {
    const base = { provider: 'builtin' as const, model: null }
    if (level === 'off') {
      return { ...base, allowed: true, reason: null, codes: [], details: { level, stage: context.stage, checked: false } }
    }
    // What is fine as a picture may not be as a sound: media lists count only for their media.
    const matches = this.scan(text).filter((m) => concerns(this.#lists.get(m.code)!, context))
    const matchedCodes = new Set(matches.map((m) => m.code))
    for (const combination of this.#combinations) {
      if (combination.allOf.every((code) => matchedCodes.has(code)) && combination.anyOf.some((code) => matchedCodes.has(code))) {
        const parts = matches.filter((m) => combination.allOf.includes(m.code) || combination.anyOf.includes(m.code))
        matches.push({
          code: combination.code,
          minLevel: combination.minLevel,
          term: parts.map((m) => m.term).join(' + '),
          found: parts.map((m) => m.found).join(' + ')
        })
        matchedCodes.add(combination.code)
      }
    }
    const blockingMatches = matches.filter((m) => blocks(m.minLevel, level))
    const blocking = [...new Set(blockingMatches.map((m) => m.code))]
      .sort((a, b) => this.#lists.get(a)!.severity - this.#lists.get(b)!.severity)
    const noted = [...matchedCodes].filter((code) => !blocking.includes(code) && this.#lists.get(code)!.minLevel !== null)
    const details: Record<string, unknown> = {
      level,
      stage: context.stage,
      matches: blockingMatches.map((m) => ({ code: m.code, term: m.term, found: m.found })),
      allowed_at_this_level: noted
    }
    if (context.media_type !== undefined) details.media_type = context.media_type
    const mediaLists = [...this.#lists.values()].filter((list) => list.mediaTypes !== null && concerns(list, context)).map((list) => list.code)
    if (mediaLists.length > 0) details.media_lists = mediaLists
    if (blocking.length === 0) return { ...base, allowed: true, reason: null, codes: [], details }
    const first = this.#lists.get(blocking[0]!)!
    if (first.reasonDe !== null) details.reason_de = first.reasonDe
    return { ...base, allowed: false, reason: first.reason, codes: blocking, details }
  }

  /** Every list entry the text contains, whatever the level. */
  scan (text: string): Match[] {
    const { sequences, joined } = tokenise(text)
    const matches: Match[] = []
    const seen = new Set<string>()
    const add = (list: CompiledList, term: string, found: string): void => {
      const key = `${list.code}\u0000${term}`
      if (seen.has(key)) return
      seen.add(key)
      matches.push({ code: list.code, minLevel: list.minLevel, term, found })
    }
    for (const sequence of sequences) {
      const candidates = sequence.map(variants)
      const covered = this.#allowedPositions(candidates)
      for (let i = 0; i < sequence.length; i++) {
        if (covered.has(i) || candidates[i]!.some((c) => this.#allowWords.has(c))) continue
        for (const candidate of candidates[i]!) {
          for (const phrase of this.#phrases.get(candidate) ?? []) {
            if (phraseAt(candidates, i, phrase.words) && !overlaps(covered, i, phrase.words.length)) {
              add(phrase.list, phrase.term, sequence.slice(i, i + phrase.words.length).join(' '))
            }
          }
        }
        this.#matchWord(candidates[i]!, sequence[i]!, add)
      }
    }
    for (const token of joined) {
      const candidates = variants(token)
      if (candidates.some((c) => this.#allowWords.has(c))) continue
      this.#matchWord(candidates, token, add)
    }
    for (const word of maskedWords(text)) {
      const pattern = maskPattern(word)
      for (const [form, entries] of this.#exact) {
        if (pattern.test(form)) for (const { list, term } of entries) add(list, term, word)
      }
    }
    return matches
  }

  #matchWord (candidates: string[], found: string, add: (list: CompiledList, term: string, found: string) => void): void {
    for (const candidate of candidates) {
      for (const { list, term } of this.#exact.get(candidate) ?? []) add(list, term, found)
      for (const { stem, list } of this.#stems) {
        if (stemMatches(candidate, stem)) add(list, stem, found)
      }
      for (const { tail, list } of this.#tails) {
        if (tailMatches(candidate, tail)) add(list, tail, found)
      }
    }
  }

  #allowedPositions (candidates: string[][]): Set<number> {
    const covered = new Set<number>()
    for (let i = 0; i < candidates.length; i++) {
      for (const phrase of this.#allowPhrases) {
        if (phraseAt(candidates, i, phrase)) {
          for (let j = i; j < i + phrase.length; j++) covered.add(j)
        }
      }
    }
    return covered
  }

  #addTerm (term: string, list: CompiledList, forms: (word: string) => string[]): void {
    const words = tokensOf(term)
    if (words.length === 0) return
    if (words.length === 1) {
      for (const form of forms(words[0]!)) {
        const entries = this.#exact.get(form) ?? []
        entries.push({ list, term: words[0]! })
        this.#exact.set(form, entries)
      }
      return
    }
    const phrases = this.#phrases.get(words[0]!) ?? []
    phrases.push({ words, list, term: words.join(' ') })
    this.#phrases.set(words[0]!, phrases)
  }
}

function concerns (list: CompiledList, context: SafetyContext): boolean {
  return list.mediaTypes === null || (context.media_type !== undefined && list.mediaTypes.has(context.media_type))
}

function blocks (minLevel: SafetyLevel | null, level: SafetyLevel): boolean {
  return minLevel !== null && level !== 'off' && STRICTNESS[level] >= STRICTNESS[minLevel]
}

let cachedWordLists: SafetyWordLists | undefined

function defaultWordLists (): SafetyWordLists {
  if (cachedWordLists === undefined) {
    const data: unknown = safetyWordsFile
    if (!Value.Check(SafetyWordLists, data)) {
      const error = Value.Errors(SafetyWordLists, data).First()
      throw new Error(`services/pipeline/data/safety-words.json is invalid at ${error?.path ?? '?'}: ${error?.message ?? '?'}`)
    }
    cachedWordLists = data
  }
  return cachedWordLists
}

/** Lower case, umlauts spelled out (ä → ae, ß → ss), accents dropped: "Schläger" and "Schlaeger" compare equal. */
export function foldWord (text: string): string {
  return text.normalize('NFKC').toLowerCase()
    .replace(/ä/g, 'ae').replace(/ö/g, 'oe').replace(/ü/g, 'ue').replace(/ß/g, 'ss')
    .normalize('NFD').replace(/\p{M}/gu, '')
}

function tokensOf (text: string): string[] {
  return foldWord(text).match(TOKEN) ?? []
}

/** kill → kills, killed, killing, killer, killers; rape → raped, raping. */
function englishForms (word: string): string[] {
  const forms = [word, `${word}s`, `${word}es`, `${word}ed`, `${word}ing`, `${word}er`, `${word}ers`]
  if (word.endsWith('e')) forms.push(`${word}d`, `${word}r`, `${word}rs`, `${word.slice(0, -1)}ing`)
  return forms
}

/**
 * The text as two word sequences (as written, and with leetspeak undone) plus
 * words that were spelled out: "k.i.l.l" and "self-harm" within one chunk,
 * and three or more single letters in a row ("k i l l").
 */
function tokenise (text: string): { sequences: string[][], joined: string[] } {
  const plain: string[] = []
  const decoded: string[] = []
  const joined: string[] = []
  for (const chunk of foldWord(text).split(/\s+/)) {
    if (chunk === '') continue
    const plainTokens = chunk.match(TOKEN) ?? []
    const decodedChunk = /\p{L}/u.test(chunk) ? chunk.replace(/[013457@$]/g, (c) => LEET[c]!) : chunk
    const decodedTokens = decodedChunk.match(TOKEN) ?? []
    plain.push(...plainTokens)
    decoded.push(...decodedTokens)
    if (plainTokens.length > 1) joined.push(plainTokens.join(''))
    if (decodedTokens.length > 1) joined.push(decodedTokens.join(''))
  }
  for (const sequence of [plain, decoded]) {
    let run: string[] = []
    for (const token of [...sequence, '']) {
      if (token.length === 1) {
        run.push(token)
        continue
      }
      if (run.length >= 3) joined.push(run.join(''))
      run = []
    }
  }
  const sequences = decoded.join(' ') === plain.join(' ') ? [plain] : [plain, decoded]
  return { sequences, joined: [...new Set(joined)] }
}

// Words are cut at anything but letters, digits and masks, with one linear
// split: a pattern that finds masked words in one go backtracks badly on long
// unmasked runs, and the text is a client's.
const NOT_WORD = /[^\p{L}\p{N}*#]+/u
const MAX_MASKED_WORD = 40

/** Words with letters hidden behind * or #: at least two letters shown, no longer than a real word. */
function maskedWords (text: string): string[] {
  return foldWord(text).split(NOT_WORD).filter((word) =>
    word.length <= MAX_MASKED_WORD && /[*#]/.test(word) && (word.match(/\p{L}/gu) ?? []).length >= 2)
}

/** f*ck → /^f\p{L}ck$/u: each mask is one letter. */
function maskPattern (word: string): RegExp {
  const source = Array.from(word, (c) => c === '*' || c === '#' ? '\\p{L}' : c.replace(/[$]/g, '\\$&')).join('')
  return new RegExp(`^${source}$`, 'u')
}

/**
 * The word with stretched letters undone: every run of three or more of the
 * same letter becomes one or two ("kiiiill" → kill, "asss" → ass). Runs of two
 * are left alone, they are ordinary spelling.
 */
function variants (token: string): string[] {
  const runs = token.match(/(.)\1{2,}/gu)
  if (runs === null) return [token]
  const result = new Set<string>([token])
  if (runs.length > 4) {
    // Too many runs to try every choice: only all-one and all-two.
    result.add(token.replace(/(.)\1{2,}/gu, '$1'))
    result.add(token.replace(/(.)\1{2,}/gu, '$1$1'))
    return [...result]
  }
  for (let mask = 0; mask < 2 ** runs.length; mask++) {
    let index = 0
    result.add(token.replace(/(.)\1{2,}/gu, (_run, letter: string) => letter.repeat(((mask >> index++) & 1) + 1)))
  }
  return [...result]
}

function phraseAt (candidates: string[][], start: number, words: string[]): boolean {
  if (start + words.length > candidates.length) return false
  return words.every((word, offset) => candidates[start + offset]!.includes(word))
}

function overlaps (covered: Set<number>, start: number, length: number): boolean {
  for (let i = start; i < start + length; i++) if (covered.has(i)) return true
  return false
}

function stemMatches (word: string, stem: string): boolean {
  if (!word.startsWith(stem)) return false
  const rest = word.slice(stem.length)
  return STEM_ENDINGS.includes(rest) || rest.length >= MIN_COMPOUND_PART
}

function tailMatches (word: string, tail: string): boolean {
  for (const ending of STEM_ENDINGS) {
    if (word.endsWith(tail + ending) && word.length - tail.length - ending.length >= MIN_COMPOUND_PART) return true
  }
  return false
}
