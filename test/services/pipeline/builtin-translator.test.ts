import t from 'tap'
import { BuiltinTranslator, conjugate, thirdPerson } from '../../../services/pipeline/builtin-translator.js'

const translator = new BuiltinTranslator()

t.test('German is translated word by word', async (t) => {
  const result = await translator.translate('Eine Blume auf der Wiese')
  t.equal(result.output, 'A flower on the meadow')
  t.equal(result.translated, true)
  t.equal(result.source_language, 'de')
  t.equal(result.provider, 'builtin')
  t.equal(result.model, null)
  t.same(result.details?.untranslated_words, [])
  t.equal(result.details?.words_translated, 5)
})

t.test('verbs, plurals, inflected adjectives and punctuation', async (t) => {
  t.equal((await translator.translate('Der Hund spielt mit dem Ball im Garten.')).output, 'The dog plays with the ball in the garden.')
  t.equal((await translator.translate('Zwei rote Autos und drei Kinder am Strand')).output, 'Two red cars and three children at the beach')
  t.equal((await translator.translate('Ein Vogel fliegt über den Wald! Die Katze schläft.')).output, 'A bird flies over the forest! The cat sleeps.')
  t.equal((await translator.translate('Es regnet auf die kleinen Häuser')).output, 'It rains on the small houses')
})

t.test('phrases win over single words, longest first', async (t) => {
  t.equal((await translator.translate('Es war einmal ein Drache')).output, 'Once upon a time a dragon')
  t.equal((await translator.translate('Ein Baum vor dem Haus')).output, 'A tree in front of the house')
  // a comma between the words breaks the phrase
  t.equal((await translator.translate('Es war, einmal')).output.startsWith('It was'), true)
})

t.test('umlauts typed as ae/oe/ue and ß typed as ss are understood', async (t) => {
  t.equal((await translator.translate('Ein gruener Baer auf der Strasse')).output, 'A green bear on the street')
})

t.test('compounds are split into known words', async (t) => {
  t.equal((await translator.translate('Die Katze auf der Blumenwiese')).output, 'The cat on the flower meadow')
  t.equal((await translator.translate('Ein Sonnenblumenfeld')).output, 'A sunflower field')
  t.equal((await translator.translate('Regenwolken über dem Baumhaus')).output, 'Rain clouds over the tree house')
})

t.test('a lower-case text stays lower-case at the start', async (t) => {
  t.equal((await translator.translate('eine blume')).output, 'a flower')
})

t.test('words the dictionary does not know are kept and listed', async (t) => {
  const result = await translator.translate('Ein Zyklopenturm glibbert im Wald')
  t.equal(result.output, 'A Zyklopenturm glibbert in the forest')
  t.equal(result.translated, true)
  t.same(result.details?.untranslated_words, ['Zyklopenturm', 'glibbert'])
})

t.test('English passes through unchanged', async (t) => {
  const text = 'An astronaut riding a horse on the moon'
  const result = await translator.translate(text)
  t.equal(result.output, text)
  t.equal(result.translated, false)
  t.equal(result.source_language, 'en')
  t.equal(result.details?.untranslated, undefined)
})

t.test('gibberish comes back unchanged and marked untranslated', async (t) => {
  const result = await translator.translate('xqzt blorf vrrmp')
  t.equal(result.output, 'xqzt blorf vrrmp')
  t.equal(result.translated, false)
  t.equal(result.source_language, null)
  t.equal(result.details?.untranslated, true)
})

t.test('an empty text is not a language', async (t) => {
  const result = await translator.translate('')
  t.equal(result.output, '')
  t.equal(result.source_language, null)
  t.equal(result.details?.untranslated, true)
})

t.test('other languages are named, not translated', async (t) => {
  for (const [text, language] of [['Le chat est sur la table', 'fr'], ['El perro y la casa con una flor', 'es'], ['Il gatto è sul tavolo della cucina', 'it']] as const) {
    const result = await translator.translate(text)
    t.equal(result.output, text, language)
    t.equal(result.translated, false)
    t.equal(result.source_language, language)
    t.equal(result.details?.untranslated, true)
  }
})

t.test('an aborted signal stops before any work', async (t) => {
  const controller = new AbortController()
  controller.abort(new Error('client went away'))
  await t.rejects(translator.translate('Eine Blume', controller.signal), { message: 'client went away' })
})

t.test('a custom dictionary replaces the bundled one', async (t) => {
  const custom = new BuiltinTranslator({ phrases: {}, words: { katze: 'kitty', die: 'the' }, verbs: {} })
  t.equal((await custom.translate('Die Katze')).output, 'The kitty')
  t.equal((await custom.translate('Die Blume')).details?.untranslated_words?.toString(), 'Blume')
})

t.test('regular verbs are conjugated', async (t) => {
  t.same(conjugate('spielen', 'play'), [['spielen', 'play'], ['spiele', 'play'], ['spielst', 'play'], ['spielt', 'plays']])
  t.same(conjugate('finden', 'find').map(([form]) => form), ['finden', 'finde', 'findest', 'findet'])
  t.same(conjugate('regnen', 'rain').map(([form]) => form), ['regnen', 'regne', 'regnest', 'regnet'])
  t.same(conjugate('tanzen', 'dance').map(([form]) => form), ['tanzen', 'tanze', 'tanzt', 'tanzt'])
  t.same(conjugate('klettern', 'climb').map(([form]) => form), ['klettern', 'klettere', 'kletterst', 'klettert'])
  t.equal(thirdPerson('fly'), 'flies')
  t.equal(thirdPerson('play'), 'plays')
  t.equal(thirdPerson('go'), 'goes')
  t.equal(thirdPerson('do magic'), 'does magic')
  t.equal(thirdPerson('wish'), 'wishes')
})
