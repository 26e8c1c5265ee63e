import t from 'tap'
import { join } from 'node:path'
import { BuiltinInterceptor } from '../../../services/pipeline/builtin-interceptor.js'
import { loadPipelines, type PipelineDefinition } from '../../../services/pipeline/pipeline-definitions.js'

const pipelines = await loadPipelines(join(import.meta.dirname, '../../../configs/pipelines'))
const interceptor = new BuiltinInterceptor()
const dada = pipelines.get('dada')!
const bauhaus = pipelines.get('bauhaus')!

t.test('the same input gives the same output', async (t) => {
  const first = await interceptor.transform('A flower on the meadow', dada)
  const second = await interceptor.transform('A flower on the meadow', dada)
  t.equal(first.output, second.output)
  t.same(first.details, second.details)
  t.equal(first.provider, 'builtin')
  t.equal(first.model, null)
})

t.test('the output keeps the prompt and uses the pipeline\'s template and vocabulary', async (t) => {
  for (const pipeline of pipelines.values()) {
    const result = await interceptor.transform('A flower on the meadow.', pipeline)
    t.match(result.output, /a flower on the meadow/i, pipeline.name)
    const picked = result.details?.vocabulary as string[]
    t.equal(picked.length, 3)
    t.equal(new Set(picked).size, 3, 'no word twice')
    for (const word of picked) {
      t.ok(pipeline.builtin.vocabulary.includes(word))
      t.ok(result.output.includes(word), `${pipeline.name} output contains "${word}"`)
    }
    const templateWords = pipeline.builtin.template.replace(/\{\w+\}/g, ' ').split(/[\s,]+/).filter((w) => w.length > 3)
    for (const word of templateWords) t.ok(result.output.includes(word), `${pipeline.name} output has the template's "${word}"`)
    t.notMatch(result.output, /[{}]|\s,|,,|\s{2}/, 'no placeholders or stray punctuation left')
  }
})

t.test('different pipelines give clearly different outputs', async (t) => {
  const outputs = await Promise.all([...pipelines.values()].map(async (p) => (await interceptor.transform('A flower on the meadow', p)).output))
  t.equal(new Set(outputs).size, outputs.length)
  const a = (await interceptor.transform('A flower on the meadow', dada)).details?.vocabulary as string[]
  const b = (await interceptor.transform('A flower on the meadow', bauhaus)).details?.vocabulary as string[]
  t.same(a.filter((w) => b.includes(w)), [])
})

t.test('different prompts pick differently', async (t) => {
  const picks = new Set<string>()
  for (const text of ['a cat', 'a dog', 'a tree', 'a house', 'a boat', 'a bird']) {
    picks.add(JSON.stringify((await interceptor.transform(text, dada)).details?.vocabulary))
  }
  t.ok(picks.size > 1)
})

t.test('templates without prefix, suffix or vocabulary placeholder', async (t) => {
  const minimal: PipelineDefinition = {
    ...dada,
    name: 'minimal',
    builtin: { template: '{prefix} {prompt} {suffix}', vocabulary: ['one', 'two'], vocabulary_picks: 5 }
  }
  const result = await interceptor.transform('Mountains at night!', minimal)
  t.match(result.output, /^Mountains at night, (one and two|two and one)$/)
  t.equal(result.details?.prefix, null)
  t.equal(result.details?.suffix, null)

  const single: PipelineDefinition = { ...minimal, builtin: { template: 'Picture of {prompt} with {vocabulary}', vocabulary: ['stars'], vocabulary_picks: 1 } }
  t.equal((await interceptor.transform('NASA rockets', single)).output, 'Picture of NASA rockets with stars')
  t.equal((await interceptor.transform('The tall towers', single)).output, 'Picture of the tall towers with stars')
  t.equal((await interceptor.transform('Berlin at night', single)).output, 'Picture of Berlin at night with stars')
})

t.test('an aborted signal stops before any work', async (t) => {
  const controller = new AbortController()
  controller.abort(new Error('gone'))
  await t.rejects(interceptor.transform('a cat', dada, controller.signal), { message: 'gone' })
})
