import t from 'tap'
import { BuiltinSafetyChecker, type SafetyWordLists } from '../../../services/pipeline/builtin-safety.js'
import type { SafetyLevel } from '../../../schemas/run.js'

const checker = new BuiltinSafetyChecker()
const input = { stage: 'input' as const }

async function codes (text: string, level: SafetyLevel = 'kids'): Promise<string[]> {
  return (await checker.check(text, level, input)).codes
}

t.test('harmless prompts pass at the strictest level', async (t) => {
  for (const text of ['Eine Blume auf der Wiese', 'A flower on the meadow', 'Es war einmal ein kleiner Drache', 'A robot dancing in the rain']) {
    const verdict = await checker.check(text, 'kids', input)
    t.equal(verdict.allowed, true, text)
    t.equal(verdict.reason, null)
    t.same(verdict.codes, [])
    t.equal(verdict.provider, 'builtin')
    t.equal(verdict.model, null)
  }
})

t.test('a blocked verdict names the codes and gives a child-friendly reason', async (t) => {
  const verdict = await checker.check('A knight with a sword', 'kids', input)
  t.equal(verdict.allowed, false)
  t.same(verdict.codes, ['violence.weapon'])
  t.match(verdict.reason, /Weapons don't belong in our pictures/)
  t.match(verdict.details, { reason_de: /Waffen/, matches: [{ code: 'violence.weapon', term: 'sword', found: 'sword' }] })
})

t.test('levels: kids blocks all categories, youth fewer, adult only the hardest, off nothing', async (t) => {
  const cases: Array<[string, Record<SafetyLevel, string[]>]> = [
    ['a pirate with a gun', { kids: ['violence.weapon'], youth: [], adult: [], off: [] }],
    ['Ein Bier im Biergarten', { kids: ['drugs.alcohol'], youth: [], adult: [], off: [] }],
    ['a zombie in the garden', { kids: ['horror.scary'], youth: [], adult: [], off: [] }],
    ['the dragon kills the knight', { kids: ['violence.killing'], youth: ['violence.killing'], adult: [], off: [] }],
    ['Der Mörder im Haus', { kids: ['violence.killing'], youth: ['violence.killing'], adult: [], off: [] }],
    ['sexy pictures', { kids: ['sexual.explicit'], youth: ['sexual.explicit'], adult: [], off: [] }],
    ['a decapitated statue', { kids: ['gore.extreme'], youth: ['gore.extreme'], adult: ['gore.extreme'], off: [] }],
    ['Ein Hakenkreuz an der Wand', { kids: ['hate.extremism'], youth: ['hate.extremism'], adult: ['hate.extremism'], off: [] }]
  ]
  for (const [text, expected] of cases) {
    for (const level of ['kids', 'youth', 'adult', 'off'] as const) {
      const verdict = await checker.check(text, level, input)
      t.same(verdict.codes, expected[level], `${text} at ${level}`)
      t.equal(verdict.allowed, expected[level].length === 0)
    }
  }
})

t.test('what a looser level lets through is still noted', async (t) => {
  const verdict = await checker.check('a pirate with a gun', 'adult', input)
  t.equal(verdict.allowed, true)
  t.same(verdict.details?.allowed_at_this_level, ['violence.weapon'])
})

t.test('off does not look at the text', async (t) => {
  const verdict = await checker.check('Hakenkreuz', 'off', input)
  t.equal(verdict.allowed, true)
  t.equal(verdict.details?.checked, false)
})

t.test('German and English lists', async (t) => {
  t.same(await codes('Ein Ritter mit Schwert'), ['violence.weapon'])
  t.same(await codes('Eine Pistole'), ['violence.weapon'])
  t.same(await codes('a bottle of wine'), ['drugs.alcohol'])
  t.same(await codes('Eine Zigarette'), ['drugs.tobacco'])
  t.same(await codes('blood on the floor'), ['gore.blood'])
  t.same(await codes('Blut auf dem Boden'), ['gore.blood'])
})

t.test('whole words, not substrings', async (t) => {
  for (const text of ['A grasshopper on a leaf', 'A class of bass players', 'Sussex and Essex', 'a heroine of the story', 'Ein Schwein im Stall', 'Die Feuerwehr kommt', 'Waffeln mit Sahne', 'Eine Drogerie', 'Blüten im Garten', 'Wir vergleichen Bilder', 'Ich kriege ein Eis', 'a toddler playing', 'A swordfish']) {
    t.same(await codes(text), [], text)
  }
})

t.test('English inflections match', async (t) => {
  for (const text of ['he was killed', 'killing time', 'a killer', 'two guns', 'the bomber']) {
    t.not((await codes(text, 'kids')).length, 0, text)
  }
})

t.test('German compounds: stems match heads, tails match ends, the allow list wins', async (t) => {
  t.same(await codes('Waffenhandel'), ['violence.weapon'])
  t.same(await codes('Ein Waffenlager'), ['violence.weapon'])
  t.same(await codes('Eine Schusswaffe'), ['violence.weapon'])
  t.same(await codes('Im Weltkrieg'), ['violence.fighting'])
  t.same(await codes('Ein Drogenhändler'), ['drugs.illegal'], 'youth list, kids blocks it too')
  t.same(await codes('Massenmord'), ['violence.killing'])
  t.same(await codes('Ein blutiger Finger'), ['gore.blood'])
  t.same(await codes('Ein Schwertfisch im Meer'), [])
  t.same(await codes('Ein Granatapfel'), [])
  t.same(await codes('Eine Wasserpistole'), [])
  t.same(await codes('Bombenwetter heute'), [])
  t.same(await codes('Der Durchmesser des Kreises'), [])
})

t.test('allowed phrases cover their words only', async (t) => {
  t.same(await codes('a shooting star'), [])
  t.same(await codes('a killer whale'), [])
  t.same(await codes('a shooting star with a gun'), ['violence.weapon'])
})

t.test('obfuscations are undone', async (t) => {
  const cases: Array<[string, string]> = [
    ['k1ll the dragon', 'violence.killing'],
    ['$h1t', 'profanity.mild'],
    ['@ss', 'profanity.mild'],
    ['s3x', 'sexual.explicit'],
    ['a g4n6', ''],
    ['w34p0n', 'violence.weapon'],
    ['kiiiiill', 'violence.killing'],
    ['guuuuuns', 'violence.weapon'],
    ['k.i.l.l', 'violence.killing'],
    ['k-i-l-l', 'violence.killing'],
    ['k_i_l_l', 'violence.killing'],
    ['k i l l the dragon', 'violence.killing'],
    ['self-harm', 'self_harm'],
    ['KILL', 'violence.killing'],
    ['Schläger mit Messer', 'violence.weapon'],
    ['Schlaeger mit MESSER', 'violence.weapon'],
    ['Scheisse', 'profanity.mild'],
    ['Scheiße', 'profanity.mild'],
    ['Wäffe', ''],
    ['Waaaaffe', 'violence.weapon'],
    ['ﬁrearm', 'violence.weapon'],
    ['f*ck', 'profanity.strong'],
    ['F**K this', 'profanity.strong'],
    ['sh#t happens', 'profanity.mild'],
    ['b*tch', 'profanity.mild'],
    ['fck', 'profanity.strong'],
    ['pr0n', 'sexual.explicit'],
    ['Titten', 'sexual.nudity']
  ]
  for (const [text, code] of cases) {
    t.same(await codes(text, 'kids'), code === '' ? [] : [code], text)
  }
})

t.test('masks stand for single letters of listed words only', async (t) => {
  t.same(await codes('a st*r in the sky'), [], 'a masked harmless word is harmless')
  t.same(await codes('5 * 3 = 15'), [], 'arithmetic is not a mask')
  t.same(await codes('f*'), [], 'one letter and a mask say nothing')
  t.ok((await codes('f***ing dragon')).includes('profanity.strong'), 'masks inside a longer word')
  t.same(await codes('sh**'), ['profanity.mild'], 'masks at the end')
  t.same(await codes('fi*h'), [], 'fish is not listed')
  // A client's text: long runs without masks must cost a linear scan, not a backtracking one.
  t.same(await codes('a'.repeat(20000)), [], 'a 20000-letter word is checked in passing')
  t.same(await codes(`${'a'.repeat(20000)} f*ck`), ['profanity.strong'])
  t.same(await codes(`${'a*'.repeat(5000)}`), [], 'an over-long masked word is no word')
  const { matches } = (await checker.check('what the f*ck', 'kids', input)).details as { matches: Array<{ term: string, found: string }> }
  t.ok(matches.some((m) => m.term === 'fuck' && m.found === 'f*ck'), 'the record shows the masked word and what it stands for')
})

t.test('media lists: a sound can be too frightening where a picture of it is not', async (t) => {
  const text = 'A cat screaming at the moon'
  t.same((await checker.check(text, 'kids', input)).codes, [], 'the input check is about the idea, not a medium')
  t.same((await checker.check(text, 'kids', { stage: 'pre_output', media_type: 'image' })).codes, [])
  const audio = await checker.check(text, 'kids', { stage: 'pre_output', media_type: 'audio' })
  t.same(audio.codes, ['sound.frightening'])
  t.match(audio.reason, /sound/)
  t.match(audio.details, { media_type: 'audio', media_lists: ['sound.frightening'], reason_de: /Klang/ })
  t.same((await checker.check('Eine Katze kreischt', 'kids', { stage: 'pre_output', media_type: 'video' })).codes, ['sound.frightening'], 'German, and video has sound too')
  t.same((await checker.check(text, 'youth', { stage: 'pre_output', media_type: 'audio' })).codes, [], 'a kids-only list')
  t.notOk('media_lists' in (await checker.check(text, 'kids', input)).details!, 'no media lists where none apply')
})

t.test('a goal is not a shooting', async (t) => {
  t.same(await codes('Ein Hund schießt ein Tor'), [])
  t.same(await codes('Die Kinder wollen Tore schießen'), [])
  t.same(await codes('Ein Hund schießt auf Menschen'), ['violence.fighting'])
})

t.test('single letters in a row are read as one word', async (t) => {
  t.same(await codes('a b c'), [])
  t.same(await codes('g u n'), ['violence.weapon'])
})

t.test('combinations: sexual content with a minor is blocked even for adults', async (t) => {
  const verdict = await checker.check('a nude girl', 'adult', input)
  t.equal(verdict.allowed, false)
  t.same(verdict.codes, ['sexual.minors'])
  t.match(verdict.details, { matches: [{ code: 'sexual.minors', term: 'nude + girl' }] })
  t.same(await codes('a nude statue', 'adult'), [])
  t.same(await codes('a girl with a balloon', 'adult'), [])
  t.same(await codes('a nude girl', 'kids'), ['sexual.minors', 'sexual.nudity'], 'most serious first')
})

t.test('the context is recorded', async (t) => {
  const verdict = await checker.check('a flower', 'youth', { stage: 'pre_output', media_type: 'image' })
  t.match(verdict.details, { level: 'youth', stage: 'pre_output', media_type: 'image' })
})

t.test('an aborted signal stops before any work', async (t) => {
  const controller = new AbortController()
  controller.abort(new Error('gone'))
  await t.rejects(checker.check('a flower', 'kids', input, controller.signal), { message: 'gone' })
})

t.test('custom lists: generic reason, many stretched runs, bad combinations', async (t) => {
  const lists: SafetyWordLists = {
    allow: { words: [], phrases: [] },
    lists: [{ code: 'test.word', min_level: 'youth', en: ['abcdef'] }],
    combinations: []
  }
  const custom = new BuiltinSafetyChecker(lists)
  const verdict = await custom.check('aaabbbcccdddeeefff', 'kids', input)
  t.equal(verdict.allowed, false)
  t.match(verdict.reason, /not something we can make a picture of/)
  t.equal(verdict.details?.reason_de, undefined)
  t.same((await custom.check('an abcdef', 'adult', input)).codes, [])
  t.throws(() => new BuiltinSafetyChecker({ ...lists, combinations: [{ code: 'nope', min_level: 'adult', all_of: [], any_of: [] }] }), /nope/)
})
