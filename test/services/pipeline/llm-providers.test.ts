import t, { type Test } from 'tap'
import { join } from 'node:path'
import { LlmClient } from '../../../services/pipeline/llm-client.js'
import {
  LlmInterceptor, LlmSafetyChecker, LlmTranslator, createBuiltinTextProviders, createTextProviders, parseVerdict
} from '../../../services/pipeline/llm-providers.js'
import { BuiltinInterceptor } from '../../../services/pipeline/builtin-interceptor.js'
import { BuiltinSafetyChecker } from '../../../services/pipeline/builtin-safety.js'
import { BuiltinTranslator } from '../../../services/pipeline/builtin-translator.js'
import { loadPipelines } from '../../../services/pipeline/pipeline-definitions.js'
import { startFakeLlm, llmReplies, type FakeLlm, type FakeLlmResponder } from '../../fakes/llm.js'

const pipelines = await loadPipelines(join(import.meta.dirname, '../../../configs/pipelines'))
const dada = pipelines.get('dada')!
const input = { stage: 'input' as const }

async function setup (t: Test, responder?: FakeLlmResponder, timeoutMs = 5000): Promise<{ server: FakeLlm, client: LlmClient }> {
  const server = await startFakeLlm(responder === undefined ? {} : { responder })
  t.teardown(server.close)
  return { server, client: new LlmClient({ baseUrl: `${server.url}/v1`, model: 'llama3.2', timeoutMs }) }
}

t.test('translator: asks for English, strips reasoning and quotes', async (t) => {
  const { server, client } = await setup(t, () => llmReplies.withThinking('German. Blume = flower.', '"A flower on the meadow"'))
  const result = await new LlmTranslator(client).translate('Eine Blume auf der Wiese')
  t.equal(result.output, 'A flower on the meadow')
  t.equal(result.translated, true)
  t.equal(result.source_language, 'de')
  t.equal(result.provider, 'llm')
  t.equal(result.model, 'llama3.2')
  t.match(result.details, { finish_reason: 'stop', thinking_stripped: true })
  const body = server.requests[0]!.body
  t.equal(body.temperature, 0)
  t.equal(body.messages[0].role, 'system')
  t.match(body.messages[0].content, /into natural English/)
  t.same(body.messages[1], { role: 'user', content: 'Eine Blume auf der Wiese' })
})

t.test('translator: an unchanged answer is not a translation', async (t) => {
  const { client } = await setup(t, () => llmReplies.text('A flower on the meadow'))
  const result = await new LlmTranslator(client).translate('A flower  on the meadow')
  t.equal(result.translated, false)
  t.equal(result.source_language, 'en')
})

t.test('translator: a truncated answer is marked', async (t) => {
  const { client } = await setup(t, () => llmReplies.text('A flower on', { finishReason: 'length' }))
  const result = await new LlmTranslator(client).translate('Eine Blume auf der Wiese')
  t.equal(result.details?.truncated, true)
})

t.test('translator: slow → timeout, 500 → failure', async (t) => {
  const { server, client } = await setup(t, () => llmReplies.slow(3000), 100)
  await t.rejects(new LlmTranslator(client).translate('Eine Blume'), { code: 'BACKEND_TIMEOUT', statusCode: 504 })
  server.setResponder(() => llmReplies.serverError('out of memory'))
  await t.rejects(new LlmTranslator(client).translate('Eine Blume'), { code: 'BACKEND_FAILED', statusCode: 502, message: /out of memory/ })
})

t.test('interceptor: the pipeline\'s instruction is the system message', async (t) => {
  const { server, client } = await setup(t, () => llmReplies.withThinking('Dada means collage.', 'A flower cut from newspaper, glued onto a tram ticket meadow'))
  const result = await new LlmInterceptor(client).transform('A flower on the meadow', dada)
  t.equal(result.output, 'A flower cut from newspaper, glued onto a tram ticket meadow')
  t.equal(result.provider, 'llm')
  t.equal(result.model, 'llama3.2')
  t.match(result.details, { pipeline: 'dada', finish_reason: 'stop' })
  const body = server.requests[0]!.body
  t.same(body.messages, [{ role: 'system', content: dada.instruction }, { role: 'user', content: 'A flower on the meadow' }])
  t.equal(body.temperature, 0.7)
})

t.test('interceptor: slow → timeout', async (t) => {
  const { client } = await setup(t, () => llmReplies.slow(3000), 100)
  await t.rejects(new LlmInterceptor(client).transform('a cat', dada), { code: 'BACKEND_TIMEOUT' })
})

t.test('safety: a JSON verdict is taken as it is', async (t) => {
  const { server, client } = await setup(t, () => llmReplies.text('{"allowed": true, "reason": null, "codes": []}'))
  const checker = new LlmSafetyChecker(client)
  const allowed = await checker.check('a friendly dragon', 'kids', { stage: 'pre_output', media_type: 'audio' })
  t.same({ ...allowed, details: undefined }, { allowed: true, reason: null, codes: [], provider: 'llm', model: 'llama3.2', details: undefined })
  t.equal(allowed.fallback_used, undefined)
  const system = server.requests[0]!.body.messages[0].content as string
  t.match(system, /children aged 6 to 12/)
  t.match(system, /sent to an audio generator/)
  t.match(server.requests[0]!.body.messages[1].content, /<<<\na friendly dragon\n>>>/)
  t.equal(server.requests[0]!.body.temperature, 0)

  server.setResponder(() => llmReplies.text('Sure! Here is my verdict:\n```json\n{"allowed": false, "reason": "That sounds too scary for a picture.", "codes": ["horror.scary", 7, " "]}\n```'))
  const blocked = await checker.check('something creepy', 'youth', input)
  t.same({ ...blocked, details: undefined }, { allowed: false, reason: 'That sounds too scary for a picture.', codes: ['horror.scary'], provider: 'llm', model: 'llama3.2', details: undefined })
  t.match(server.requests[1]!.body.messages[0].content, /teenagers aged 13 to 17/)
  t.match(server.requests[1]!.body.messages[0].content, /a prompt a workshop participant typed/)

  // The codes offered are the word lists' own, for the medium at hand.
  t.match(system, /chosen from .*sound\.frightening/, 'an audio prompt may be named sound.frightening')
  const inputSystem = server.requests[1]!.body.messages[0].content as string
  t.match(inputSystem, /chosen from .*violence\.weapon.*horror\.scary/)
  t.notMatch(inputSystem, /sound\.frightening/, 'a medium\'s list is not offered for the input')
  t.notMatch(inputSystem, /context\.minor/, 'nor a list that never blocks on its own')
})

t.test('safety: verdict inside text, blocked without a reason, allowed with a note', async (t) => {
  const { server, client } = await setup(t, () => llmReplies.text('I checked it. {"allowed": false, "codes": "violence"} That is my answer.'))
  const checker = new LlmSafetyChecker(client)
  const verdict = await checker.check('a gun', 'adult', input)
  t.equal(verdict.allowed, false)
  t.match(verdict.reason, /not something we can make a picture of/)
  t.same(verdict.codes, [])
  t.match(server.requests[0]!.body.messages[0].content, /The audience are adults/)

  server.setResponder(() => llmReplies.text('{"allowed": true, "reason": "A water gun is a toy.", "codes": ["violence.weapon"]}'))
  const allowed = await checker.check('a water gun', 'kids', input)
  t.equal(allowed.allowed, true)
  t.same(allowed.codes, [])
  t.equal(allowed.reason, null)
  t.equal(allowed.details?.model_note, 'A water gun is a toy.')
})

t.test('safety: an unreadable answer falls back to the word lists', async (t) => {
  const { client } = await setup(t, () => llmReplies.garbage())
  const checker = new LlmSafetyChecker(client)
  const blocked = await checker.check('a pirate with a gun', 'kids', input)
  t.equal(blocked.allowed, false)
  t.equal(blocked.fallback_used, true)
  t.equal(blocked.provider, 'builtin')
  t.equal(blocked.model, null)
  t.same(blocked.codes, ['violence.weapon'])
  t.match(blocked.details, { llm_model: 'llama3.2', llm_answer: /probably fine/, fallback_reason: /not a readable verdict/ })

  const allowed = await checker.check('a pirate with a parrot', 'kids', input)
  t.equal(allowed.allowed, true)
  t.equal(allowed.fallback_used, true)
})

t.test('safety: a reasoning-only answer is a failure, not a verdict', async (t) => {
  const { client } = await setup(t, () => llmReplies.text('<think>is a gun ok for kids? hmm'))
  await t.rejects(new LlmSafetyChecker(client).check('a gun', 'kids', input), { code: 'BACKEND_FAILED' })
})

t.test('safety: transport failures are thrown, not waved through', async (t) => {
  const { server, client } = await setup(t, () => llmReplies.slow(3000), 100)
  const checker = new LlmSafetyChecker(client)
  await t.rejects(checker.check('a cat', 'kids', input), { code: 'BACKEND_TIMEOUT' })
  server.setResponder(() => llmReplies.serverError())
  await t.rejects(checker.check('a cat', 'kids', input), { code: 'BACKEND_FAILED' })
})

t.test('safety: level off asks nobody', async (t) => {
  const { server, client } = await setup(t)
  const verdict = await new LlmSafetyChecker(client).check('anything', 'off', input)
  t.equal(verdict.allowed, true)
  t.equal(server.requests.length, 0)
})

t.test('parseVerdict', async (t) => {
  t.same(parseVerdict('{"allowed": false, "reason": "no {braces} here", "codes": ["a"]}'), { allowed: false, reason: 'no {braces} here', codes: ['a'] })
  t.same(parseVerdict('Verdict: {"details": {"x": 1}, "allowed": true, "note": "say \\"hi\\" }"} done'), { allowed: true, reason: null, codes: [] })
  t.same(parseVerdict('{"other": 1} and then {"allowed": false, "reason": "  "}'), { allowed: false, reason: null, codes: [] })
  t.equal(parseVerdict('{"allowed": "false"}'), null, 'a string is not a verdict')
  t.same(parseVerdict('[{"allowed": true}]'), { allowed: true, reason: null, codes: [] }, 'an object inside an array is found')
  t.equal(parseVerdict('["allowed"]'), null)
  t.equal(parseVerdict('{"allowed": tru'), null)
  t.equal(parseVerdict('no json at all'), null)
})

t.test('createTextProviders: builtin when nothing is configured', async (t) => {
  const providers = createTextProviders({ timeoutMs: 1000 })
  for (const mode of ['eco', 'fast', 'ultra'] as const) {
    t.equal(providers[mode].kind, 'builtin')
    t.equal(providers[mode].model, null)
    t.ok(providers[mode].translator instanceof BuiltinTranslator)
    t.ok(providers[mode].safety instanceof BuiltinSafetyChecker)
    t.ok(providers[mode].interceptor instanceof BuiltinInterceptor)
  }
  t.equal((await providers.eco.translator.translate('Eine Blume auf der Wiese')).output, 'A flower on the meadow')
})

t.test('createTextProviders: a mode needs both base URL and model', async (t) => {
  const providers = createTextProviders({ eco: { baseUrl: 'http://127.0.0.1:1/v1', model: ' ' }, fast: { baseUrl: '', model: 'gpt-4o-mini' }, timeoutMs: 1000 })
  t.equal(providers.eco.kind, 'builtin')
  t.equal(providers.fast.kind, 'builtin')
  t.equal(providers.ultra.kind, 'builtin')
})

t.test('createTextProviders: llmSteps picks what the model runs; none at all is builtin', async (t) => {
  const eco = { baseUrl: 'http://127.0.0.1:1/v1', model: 'llama3.2' }
  const some = createTextProviders({ eco, timeoutMs: 1000, llmSteps: ['safety'] })
  t.match(some.eco, { kind: 'llm', model: 'llama3.2', llmSteps: ['safety'] })
  t.ok(some.eco.safety instanceof LlmSafetyChecker)
  t.ok(some.eco.translator instanceof BuiltinTranslator)
  t.ok(some.eco.interceptor instanceof BuiltinInterceptor)
  const none = createTextProviders({ eco, timeoutMs: 1000, llmSteps: [] })
  t.match(none.eco, { kind: 'builtin', model: null, llmSteps: [] })
  t.same(createTextProviders({ eco, timeoutMs: 1000 }).eco.llmSteps, ['translation', 'safety', 'interception'], 'all by default')
})

t.test('createTextProviders: eco and fast talk to their own servers; ultra uses fast', async (t) => {
  const eco = await startFakeLlm({ responder: () => llmReplies.text('from eco') })
  const fast = await startFakeLlm({ responder: () => llmReplies.text('from fast') })
  t.teardown(eco.close)
  t.teardown(fast.close)
  const providers = createTextProviders({
    eco: { baseUrl: `${eco.url}/v1`, model: 'llama3.2' },
    fast: { baseUrl: `${fast.url}/v1`, model: 'gpt-4o-mini', apiKey: 'sk-fast' },
    timeoutMs: 5000
  })
  t.equal(providers.eco.kind, 'llm')
  t.equal(providers.eco.model, 'llama3.2')
  t.equal(providers.fast.model, 'gpt-4o-mini')
  t.equal(providers.ultra, providers.fast)
  t.ok(providers.eco.translator instanceof LlmTranslator)
  t.ok(providers.eco.safety instanceof LlmSafetyChecker)
  t.ok(providers.eco.interceptor instanceof LlmInterceptor)

  t.equal((await providers.eco.interceptor.transform('a cat', dada)).output, 'from eco')
  t.equal((await providers.ultra.interceptor.transform('a cat', dada)).output, 'from fast')
  t.equal(eco.requests[0]!.body.model, 'llama3.2')
  t.equal(eco.requests[0]!.headers.authorization, undefined)
  t.equal(fast.requests[0]!.body.model, 'gpt-4o-mini')
  t.equal(fast.requests[0]!.headers.authorization, 'Bearer sk-fast')

  // the word-list fallback works in an llm mode too
  const verdict = await providers.fast.safety.check('a sword', 'kids', input)
  t.equal(verdict.fallback_used, true)
  t.same(verdict.codes, ['violence.weapon'])
})

t.test('createTextProviders: only eco configured', async (t) => {
  const providers = createTextProviders({ eco: { baseUrl: 'http://127.0.0.1:11434/v1', model: 'llama3.2' }, timeoutMs: 1000 })
  t.equal(providers.eco.kind, 'llm')
  t.equal(providers.fast.kind, 'builtin')
  t.equal(providers.ultra.kind, 'builtin')
})

t.test('createBuiltinTextProviders: offline providers on their own', async (t) => {
  const providers = createBuiltinTextProviders()
  t.equal(providers.kind, 'builtin')
  t.same((await providers.safety.check('Ein Schwert', 'kids', input)).codes, ['violence.weapon'])
  t.match((await providers.interceptor.transform('a cat', dada)).output, /a cat, cut apart and glued back together as a Dada photomontage/)
})
