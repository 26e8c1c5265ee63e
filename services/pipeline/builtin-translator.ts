import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import dictionaryFile from './data/de-en.json' with { type: 'json' }
import type { Translator, TranslationResult } from './types.js'

export const Dictionary = Type.Object({
  phrases: Type.Record(Type.String(), Type.String()),
  words: Type.Record(Type.String(), Type.String()),
  verbs: Type.Record(Type.String(), Type.String())
})
export type Dictionary = Static<typeof Dictionary>

// Stop words of the languages a workshop prompt is likely to arrive in. Only
// English and German are translated; the others are recognised so the result
// can say which language it was instead of guessing.
const STOP_WORDS: Record<string, ReadonlySet<string>> = {
  en: new Set(('the a an and or but is are was were be been of in on at to with for from by it its this that these those ' +
    'he she they we you i my your his her their our there here very not no some many has have had will would can could ' +
    'into over under above below next through around while who what where when which as like big small little').split(' ')),
  fr: new Set('le la les une des du et est dans sur avec pour pas au aux ce qui que sous très je il elle nous vous ils mon ma ses leur où être ou'.split(' ')),
  es: new Set('el los las una unos unas y es está con por para del muy que pero sobre como su sus mi yo él ella hay al'.split(' ')),
  it: new Set('il lo gli una uno è con per della del nel sul che di da sono molto questo quella ma anche nella alla dei delle'.split(' '))
}
const LANGUAGE_PRIORITY = ['en', 'de', 'fr', 'es', 'it'] as const

// Closed-class words never count as half of a compound: "Baumhaus" is tree +
// house, not "Baumh" + "aus".
const FUNCTION_WORDS = new Set(('der die das den dem des ein eine einen einem einer eines und oder aber auf in im an am aus bei mit um ' +
  'zu zum zur vor für von vom nach durch über unter ins bis ist sind hat war bin es er sie wir ihr ich du uns mir dir so da').split(' '))

const INFLECTION_ENDINGS = ['n', 'e', 's', 'en', 'er', 'em', 'es', 'ern']
const LINKING_ENDINGS = ['s', 'es', 'n', 'en', 'e', 'er']
const MIN_STEM = 3

const WORD_SPLIT = /([\p{L}\p{M}]+)/u

type Language = typeof LANGUAGE_PRIORITY[number]

export interface LanguageGuess {
  language: Language | null
  /** recognised words per language */
  scores: Record<Language, number>
}

/**
 * Offline German → English translation from a bundled word list. English
 * passes through; German is translated phrase by phrase and word by word;
 * anything else comes back unchanged and says so. It never invents a word:
 * what the dictionary does not know stays as written and is listed.
 */
export class BuiltinTranslator implements Translator {
  readonly #phrases: Map<string, string>
  readonly #maxPhraseWords: number
  readonly #words: Map<string, string>
  readonly #verbForms: Map<string, string>
  readonly #englishWords: Set<string>

  constructor (dictionary: Dictionary = defaultDictionary()) {
    this.#phrases = new Map(Object.entries(dictionary.phrases).map(([k, v]) => [k.toLocaleLowerCase('de'), v]))
    this.#maxPhraseWords = Math.max(1, ...[...this.#phrases.keys()].map((k) => k.split(' ').length))
    this.#words = new Map(Object.entries(dictionary.words).map(([k, v]) => [k.toLocaleLowerCase('de'), v]))
    this.#verbForms = new Map()
    for (const [infinitive, english] of Object.entries(dictionary.verbs)) {
      for (const [form, translation] of conjugate(infinitive.toLocaleLowerCase('de'), english)) {
        if (!this.#verbForms.has(form)) this.#verbForms.set(form, translation)
      }
    }
    this.#englishWords = new Set(STOP_WORDS.en)
    for (const english of [...Object.values(dictionary.words), ...Object.values(dictionary.verbs), ...Object.values(dictionary.phrases)]) {
      for (const word of english.toLowerCase().split(/\s+/)) this.#englishWords.add(word)
    }
  }

  async translate (text: string, signal?: AbortSignal): Promise<TranslationResult> {
    signal?.throwIfAborted()
    return this.translateText(text)
  }

  translateText (text: string): TranslationResult {
    const guess = this.detectLanguage(text)
    const unchanged = { output: text, provider: 'builtin' as const, model: null, translated: false }
    if (guess.language === 'en') {
      return { ...unchanged, source_language: 'en', details: { reason: 'already English', scores: guess.scores } }
    }
    if (guess.language === null) {
      return { ...unchanged, source_language: null, details: { untranslated: true, reason: 'the language was not recognised', scores: guess.scores } }
    }
    if (guess.language !== 'de') {
      return { ...unchanged, source_language: guess.language, details: { untranslated: true, reason: `no offline dictionary for ${guess.language}`, scores: guess.scores } }
    }
    return this.#translateGerman(text, guess)
  }

  /** Counts the words each language's lists know; the most wins, ties go to English (passing through is harmless). */
  detectLanguage (text: string): LanguageGuess {
    const scores: Record<Language, number> = { en: 0, de: 0, fr: 0, es: 0, it: 0 }
    for (const word of words(text)) {
      const lower = word.toLocaleLowerCase('de')
      if (this.#isEnglish(lower)) scores.en++
      if (this.lookup(lower) !== null) scores.de++
      else if (/[äöüß]/.test(lower)) scores.de += 0.5
      for (const language of ['fr', 'es', 'it'] as const) {
        if (STOP_WORDS[language]!.has(lower)) scores[language]++
      }
    }
    let language: Language | null = null
    for (const candidate of LANGUAGE_PRIORITY) {
      if (scores[candidate] > 0 && (language === null || scores[candidate] > scores[language])) language = candidate
    }
    return { language, scores }
  }

  /** The English for one lower-case German word, or null; tries inflection endings and ae/oe/ue/ss spellings. */
  lookup (word: string): string | null {
    for (const spelling of spellings(word)) {
      const exact = this.#exact(spelling)
      if (exact !== null) return exact
      for (const ending of INFLECTION_ENDINGS) {
        if (spelling.endsWith(ending) && spelling.length - ending.length >= MIN_STEM) {
          const stemmed = this.#exact(spelling.slice(0, -ending.length))
          if (stemmed !== null) return stemmed
        }
      }
    }
    return null
  }

  #translateGerman (text: string, guess: LanguageGuess): TranslationResult {
    const parts = text.split(WORD_SPLIT)
    const out: string[] = []
    const untranslated: string[] = []
    let translatedWords = 0
    let sentenceStart = true
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!
      if (i % 2 === 0) {
        out.push(part)
        if (/[.!?:]/.test(part)) sentenceStart = true
        continue
      }
      const phrase = this.#matchPhrase(parts, i)
      let english: string | null
      if (phrase !== null) {
        english = phrase.english
        i = phrase.lastIndex
      } else {
        english = this.#translateWord(part.toLocaleLowerCase('de'))
      }
      if (english === null) {
        untranslated.push(part)
        out.push(part)
      } else {
        translatedWords++
        out.push(sentenceStart && /^\p{Lu}/u.test(part) ? capitalise(english) : english)
      }
      sentenceStart = false
    }
    return {
      output: out.join(''),
      provider: 'builtin',
      model: null,
      translated: translatedWords > 0,
      source_language: 'de',
      details: {
        dictionary: 'de-en',
        words_translated: translatedWords,
        untranslated_words: untranslated,
        scores: guess.scores
      }
    }
  }

  // Longest phrase first; only words separated by plain spaces form a phrase.
  #matchPhrase (parts: string[], start: number): { english: string, lastIndex: number } | null {
    for (let count = this.#maxPhraseWords; count >= 2; count--) {
      const lastIndex = start + 2 * (count - 1)
      if (lastIndex >= parts.length) continue
      const key: string[] = []
      let joinable = true
      for (let j = start; j <= lastIndex; j += 2) {
        if (j > start && !/^[ \t]+$/.test(parts[j - 1]!)) { joinable = false; break }
        key.push(parts[j]!.toLocaleLowerCase('de'))
      }
      if (!joinable) continue
      const english = this.#phrases.get(key.join(' '))
      if (english !== undefined) return { english, lastIndex }
    }
    return null
  }

  #translateWord (word: string): string | null {
    return this.lookup(word) ?? this.#splitCompound(word, 2)
  }

  // German compounds: the longest known head plus a known tail (which may be
  // a compound itself), "Sonnenblumenfeld" → "sunflower field".
  #splitCompound (word: string, depth: number): string | null {
    if (depth === 0 || word.length < 2 * MIN_STEM) return null
    for (let headLength = word.length - MIN_STEM; headLength >= MIN_STEM; headLength--) {
      const tail = word.slice(headLength)
      if (FUNCTION_WORDS.has(tail)) continue
      const head = this.#compoundHead(word.slice(0, headLength))
      if (head === null) continue
      const tailEnglish = this.lookup(tail) ?? this.#splitCompound(tail, depth - 1)
      if (tailEnglish !== null) return `${head} ${tailEnglish}`
    }
    return null
  }

  #compoundHead (head: string): string | null {
    if (FUNCTION_WORDS.has(head)) return null
    for (const ending of LINKING_ENDINGS) {
      if (head.endsWith(ending) && head.length - ending.length >= MIN_STEM) {
        const english = this.#exactAnySpelling(head.slice(0, -ending.length))
        if (english !== null) return english
      }
    }
    return this.#exactAnySpelling(head)
  }

  #exactAnySpelling (word: string): string | null {
    for (const spelling of spellings(word)) {
      const english = this.#exact(spelling)
      if (english !== null) return english
    }
    return null
  }

  #exact (word: string): string | null {
    return this.#words.get(word) ?? this.#verbForms.get(word) ?? null
  }

  #isEnglish (word: string): boolean {
    if (this.#englishWords.has(word)) return true
    for (const ending of ['s', 'es', 'ing', 'ed']) {
      if (word.endsWith(ending) && word.length - ending.length >= MIN_STEM && this.#englishWords.has(word.slice(0, -ending.length))) return true
    }
    return false
  }
}

let cachedDictionary: Dictionary | undefined

function defaultDictionary (): Dictionary {
  if (cachedDictionary === undefined) {
    const { about: _about, ...dictionary } = dictionaryFile
    if (!Value.Check(Dictionary, dictionary)) {
      const error = Value.Errors(Dictionary, dictionary).First()
      throw new Error(`services/pipeline/data/de-en.json is invalid at ${error?.path ?? '?'}: ${error?.message ?? '?'}`)
    }
    cachedDictionary = dictionary
  }
  return cachedDictionary
}

function words (text: string): string[] {
  return text.split(WORD_SPLIT).filter((_part, i) => i % 2 === 1)
}

// "gruen", "Strasse": keyboards without umlauts and Swiss spelling.
function spellings (word: string): string[] {
  const result = [word]
  const umlauts = word.replace(/ae/g, 'ä').replace(/oe/g, 'ö').replace(/ue/g, 'ü')
  const sharp = word.replace(/ss/g, 'ß')
  const both = umlauts.replace(/ss/g, 'ß')
  for (const spelling of [umlauts, sharp, both]) {
    if (!result.includes(spelling)) result.push(spelling)
  }
  return result
}

/** ich/du/er forms of a regular verb, each with its English. */
export function conjugate (infinitive: string, english: string): Array<[string, string]> {
  const stem = infinitive.endsWith('en') ? infinitive.slice(0, -2) : infinitive.slice(0, -1)
  // "er redet", "es regnet", "sie öffnet" need an e before the ending.
  const needsE = /[td]$/.test(stem) || /[^aeiouäöühlrmn][mn]$/.test(stem)
  const second = /[sßxz]$/.test(stem) ? `${stem}t` : needsE ? `${stem}est` : `${stem}st`
  const third = needsE ? `${stem}et` : `${stem}t`
  return [[infinitive, english], [`${stem}e`, english], [second, english], [third, thirdPerson(english)]]
}

/** "fly" → "flies", "go" → "goes", "do magic" → "does magic". */
export function thirdPerson (english: string): string {
  const space = english.indexOf(' ')
  const verb = space === -1 ? english : english.slice(0, space)
  const rest = space === -1 ? '' : english.slice(space)
  let inflected: string
  if (/[^aeiou]y$/.test(verb)) inflected = `${verb.slice(0, -1)}ies`
  else if (/(s|sh|ch|x|z|o)$/.test(verb)) inflected = `${verb}es`
  else inflected = `${verb}s`
  return inflected + rest
}

function capitalise (text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1)
}
