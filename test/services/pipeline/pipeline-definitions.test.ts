import t, { type Test } from 'tap'
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BuiltinSafetyChecker } from '../../../services/pipeline/builtin-safety.js'
import { loadPipelines, outputPreferences } from '../../../services/pipeline/pipeline-definitions.js'

const configDir = join(import.meta.dirname, '../../../configs/pipelines')

async function tempDir (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'pipelines-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

async function validDada (): Promise<Record<string, any>> {
  return JSON.parse(await readFile(join(configDir, 'dada.json'), 'utf8'))
}

t.test('the shipped pipelines load', async (t) => {
  const pipelines = await loadPipelines(configDir)
  t.same([...pipelines.keys()], ['bauhaus', 'dada', 'fairytale', 'futurism'])
  for (const pipeline of pipelines.values()) {
    t.ok(pipeline.instruction.length > 50, `${pipeline.name} has an instruction`)
    t.ok(pipeline.builtin.vocabulary.length >= 8)
    for (const mode of ['eco', 'fast', 'ultra'] as const) {
      t.same(outputPreferences(pipeline.default_outputs[mode]).at(-1)!.filter((name) => name.startsWith('builtin_')).length > 0, true, `${pipeline.name} ${mode} ends in the builtin generator: it works on a fresh clone`)
    }
    t.same(outputPreferences(pipeline.default_outputs.eco)[0], ['sd35_large'], 'eco takes ComfyUI first')
  }
})

t.test('the shipped pipelines\' own words pass the strictest word lists', async (t) => {
  // otherwise the pre-output check would block every prompt they make
  const checker = new BuiltinSafetyChecker()
  for (const pipeline of (await loadPipelines(configDir)).values()) {
    const { template, vocabulary, prefixes = [], suffixes = [] } = pipeline.builtin
    for (const text of [template, ...vocabulary, ...prefixes, ...suffixes, pipeline.title, pipeline.description]) {
      t.same((await checker.check(text, 'kids', { stage: 'pre_output' })).codes, [], `${pipeline.name}: ${text}`)
    }
  }
})

t.test('other files in the folder are ignored; an empty folder is an empty map', async (t) => {
  const dir = await tempDir(t)
  await writeFile(join(dir, 'README.md'), '# notes')
  t.equal((await loadPipelines(dir)).size, 0)
})

t.test('a missing folder is a clear error', async (t) => {
  const dir = await tempDir(t)
  await t.rejects(loadPipelines(join(dir, 'nope')), { code: 'INVALID_PIPELINE_DEFINITION', message: /nope.*cannot read the folder \(ENOENT\)/ })
})

t.test('broken files name the file and the field', async (t) => {
  const cases: Array<[string, (p: Record<string, any>) => unknown, RegExp]> = [
    ['not JSON', () => '{ "name": ', /dada\.json is invalid: not JSON/],
    ['missing field', (p) => { delete p.instruction; return p }, /dada\.json is invalid: instruction: Expected required property/],
    ['wrong type', (p) => { p.builtin.vocabulary = 'words'; return p }, /builtin\.vocabulary: Expected array/],
    ['empty entry', (p) => { p.builtin.vocabulary[2] = ''; return p }, /builtin\.vocabulary\[2\]: Expected string length greater or equal to 1/],
    ['unknown field', (p) => { p.colour = 'red'; return p }, /colour: Unexpected property/],
    ['no outputs', (p) => { p.default_outputs.fast = []; return p }, /default_outputs\.fast: Expected an output config's name, or a non-empty list in order of preference/],
    ['an empty group', (p) => { p.default_outputs.fast = [[]]; return p }, /default_outputs\.fast: Expected an output config's name, or a non-empty list in order of preference/],
    ['a config twice in a group', (p) => { p.default_outputs.fast = [['gpt_image', 'gpt_image']]; return p }, /default_outputs\.fast: Expected an output config's name, or a non-empty list in order of preference/],
    ['not a name', (p) => { p.default_outputs.fast = 3; return p }, /default_outputs\.fast: Expected an output config's name, or a non-empty list in order of preference/],
    ['name differs from file', (p) => { p.name = 'dadaism'; return p }, /name: "dadaism" must equal the file name "dada"/],
    ['template without prompt', (p) => { p.builtin.template = 'something {vocabulary}'; return p }, /builtin\.template: must contain \{prompt\}/],
    ['unknown placeholder', (p) => { p.builtin.template = '{prompt} in {style}'; return p }, /builtin\.template: unknown placeholder \{style\}/],
    ['not an object', () => [], /\(file\): Expected object/]
  ]
  for (const [what, change, message] of cases) {
    const dir = await tempDir(t)
    const content = change(await validDada())
    await writeFile(join(dir, 'dada.json'), typeof content === 'string' ? content : JSON.stringify(content))
    await t.rejects(loadPipelines(dir), { code: 'INVALID_PIPELINE_DEFINITION', statusCode: 500, message }, what)
  }
})
