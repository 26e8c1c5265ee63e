import t, { type Test } from 'tap'
import { PIPELINE_STAGES } from '../../../runstore.js'
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { BuiltinBackend } from '../../../services/backends/builtin/backend.js'
import { loadOutputConfigs, type OutputConfig } from '../../../services/backends/output-configs.js'
import { BackendRegistry } from '../../../services/backends/registry.js'
import type { GenerationRequest, GeneratorBackend, MediaItem } from '../../../services/backends/types.js'
import { GenerationBlockedError } from '../../../services/errors.js'
import { FetchPolicy } from '../../../services/http/address-policy.js'
import { createBuiltinTextProviders } from '../../../services/pipeline/llm-providers.js'
import { loadPipelines, type PipelineDefinition } from '../../../services/pipeline/pipeline-definitions.js'
import type { PipelineEvent } from '../../../services/pipeline/events.js'
import { PipelineRunner, type ExecuteOutcome } from '../../../services/pipeline/pipeline-runner.js'
import { checkDefaultOutputs, outputSize } from '../../../services/pipeline/prepare-run.js'
import type { PipelineStage } from '../../../services/pipeline/run-context.js'
import { GenerationStage } from '../../../services/pipeline/stages/generation.js'
import { InterceptionStage } from '../../../services/pipeline/stages/interception.js'
import { PreInterceptionStage } from '../../../services/pipeline/stages/pre-interception.js'
import { LocalBlobStore } from '../../../services/storage/blob/local.js'
import { MediaIngester } from '../../../services/storage/ingest.js'
import { RunStorage, type CreateRunInput, type RunChanges } from '../../../services/storage/run-storage.js'
import type { RunStatus } from '../../../schemas/run.js'
import { tempRunsDir } from '../../helper.js'
import { EVENTS_OF_ONE_OUTPUT, FailingBackend, GatedBackend } from '../../pipeline-setup.js'

const CONFIGS = new URL('../../../configs/', import.meta.url)

/** Remembers every status a run was written with, as the run moves. */
class RecordingStorage extends RunStorage {
  readonly statuses = new Map<string, RunStatus[]>()
  readonly writes = new Map<string, number>()

  override async createRun (input: CreateRunInput) {
    const metadata = await super.createRun(input)
    this.#note(metadata.run_id, metadata.status)
    return metadata
  }

  override async update (runId: string, changes: RunChanges) {
    const metadata = await super.update(runId, changes)
    if (changes.status !== undefined) this.#note(runId, changes.status)
    else this.writes.set(runId, (this.writes.get(runId) ?? 0) + 1)
    return metadata
  }

  #note (runId: string, status: RunStatus): void {
    this.statuses.set(runId, [...(this.statuses.get(runId) ?? []), status])
    this.writes.set(runId, (this.writes.get(runId) ?? 0) + 1)
  }
}

const testOutput = (name: string, backend: string, mediaType: 'image' | 'audio' = 'image'): OutputConfig =>
  ({ name, description: name, media_type: mediaType, backend, params: { media_type: mediaType }, defaults: { width: 64, height: 48 } })

interface Setup {
  runner: PipelineRunner
  storage: RecordingStorage
  registry: BackendRegistry
  runsDir: string
  logged: Array<{ details: Record<string, unknown>, message: string }>
}

async function setup (t: Test, options: { backends?: GeneratorBackend[], queue?: { concurrency: number, limit: number }, stages?: PipelineStage[], flushIntervalMs?: number } = {}): Promise<Setup> {
  const runsDir = await tempRunsDir(t)
  const storage = new RecordingStorage({
    blobs: new LocalBlobStore(runsDir),
    ingester: new MediaIngester({ maxBytes: 10 * 1024 * 1024, fetchTimeoutMs: 5000, maxRedirects: 0, fetchPolicy: new FetchPolicy() })
  })
  await storage.init()
  const configs = await loadOutputConfigs(new URL('outputs', CONFIGS).pathname)
  for (const config of [testOutput('tiny_image', 'builtin'), testOutput('tiny_audio', 'builtin', 'audio'), testOutput('gated_image', 'gated'),
    testOutput('broken_image', 'broken'), testOutput('refusing_image', 'refusing'), testOutput('empty_image', 'empty'), testOutput('throwing_image', 'throwing')]) {
    configs.set(config.name, config)
  }
  const { concurrency, limit } = options.queue ?? { concurrency: 2, limit: 10 }
  const registry = new BackendRegistry(configs, { limit })
  registry.register(new BuiltinBackend(), { concurrency })
  for (const backend of options.backends ?? []) registry.register(backend, { concurrency })
  const logged: Setup['logged'] = []
  const builtin = createBuiltinTextProviders()
  const runner = new PipelineRunner({
    storage,
    backends: registry,
    pipelines: await loadPipelines(new URL('pipelines', CONFIGS).pathname),
    textProviders: { eco: builtin, fast: builtin, ultra: builtin },
    logger: { error: (details, message) => { logged.push({ details, message }) } },
    flushIntervalMs: options.flushIntervalMs
  })
  for (const stage of options.stages ?? PIPELINE_STAGES.map((make) => make())) {
    runner.addStage(stage)
  }
  t.teardown(async () => { await runner.close() })
  return { runner, storage, registry, runsDir, logged }
}

function collect (): { events: PipelineEvent[], listener: (event: PipelineEvent) => void } {
  const events: PipelineEvent[] = []
  return { events, listener: (event) => { events.push(event) } }
}

const readMetadata = async (runsDir: string, runId: string): Promise<any> => JSON.parse(await readFile(join(runsDir, runId, 'metadata.json'), 'utf8'))

function completed (outcome: ExecuteOutcome) {
  if (outcome.status !== 'completed') throw new Error(`expected a completed run, got ${outcome.status}: ${JSON.stringify(outcome)}`)
  return outcome.answer
}

/** A backend whose generate() throws before it returns an iterable, as a plain (non-generator) method may. */
class ThrowingBackend implements GeneratorBackend {
  readonly name = 'throwing'
  unavailableReason (): string | null { return null }
  generate (_request: GenerationRequest): AsyncIterable<MediaItem> {
    throw new TypeError('cannot read properties of undefined (reading \'workflow\')')
  }
}

class EmptyBackend implements GeneratorBackend {
  readonly name = 'empty'
  unavailableReason (): string | null { return null }
  async * generate (): AsyncGenerator<MediaItem> {}
}

t.test('a run is created running (one write: nothing runs it in between), then completed; every step recorded and announced in order', async (t) => {
  // No progress flush in between, however slow the machine: the writes counted are the run's own.
  const { runner, storage, runsDir } = await setup(t, { flushIntervalMs: 3_600_000 })
  const { events, listener } = collect()
  const answer = completed(await runner.run({ schema: 'dada', input_text: 'Eine Blume auf der Wiese', output_configs: ['tiny_image'], seed: 42 }, listener))

  const metadata = await readMetadata(runsDir, answer.run_id)
  t.equal(metadata.status, 'completed')
  t.same(storage.statuses.get(answer.run_id), ['running', 'completed'], 'created running by createRun (created → running in its one write), then completed')
  t.equal(storage.writes.get(answer.run_id), 2, 'created, then (the generator being in-process) the whole trail with the final status')
  t.match(metadata, { schema: 'dada', execution_mode: 'eco', safety_level: 'kids', seed: 42, input_text: 'Eine Blume auf der Wiese', user_id: null })
  t.same(metadata.stages.map((s: any) => s.stage), ['translation', 'safety', 'interception', 'pre_output_safety', 'generation'])
  for (const stage of metadata.stages) {
    t.equal(stage.status, 'completed', stage.stage)
    t.equal(stage.provider, 'builtin', `${stage.stage} names its provider`)
    t.type(stage.duration_ms, 'number', `${stage.stage} has a duration`)
    t.ok(stage.duration_ms >= 0)
    t.match(stage.started_at, /^\d{4}-\d\d-\d\dT/)
  }
  t.equal(metadata.stages[0].output, 'A flower on the meadow')
  t.match(metadata.stages[0].details, { translated: true, source_language: 'de' })
  t.same(metadata.stages[1].decision, { allowed: true, reason: null, codes: [], fallback_used: false })
  t.equal(metadata.stages[2].output, metadata.transformed_text)
  t.match(metadata.transformed_text, /a flower on the meadow/)
  t.equal(await readFile(join(runsDir, answer.run_id, 'transformed_text.txt'), 'utf8'), metadata.transformed_text)
  t.match(metadata.stages[3].details, { stage: 'pre_output', media_type: 'image' })
  t.match(metadata.stages[4], { output: 'output_image.png', model: 'procedural-v1', details: { config: 'tiny_image', width: 64, height: 48, seed: 42, outputs: [{ index: 0, filename: 'output_image.png' }] } })
  t.match(metadata.outputs, [{ index: 0, type: 'image', config: 'tiny_image', backend: 'builtin', width: 64, height: 48 }])

  t.match(answer, {
    status: 'success',
    run_id: metadata.run_id,
    schema: 'dada',
    execution_mode: 'eco',
    seed: 42,
    input_text: 'Eine Blume auf der Wiese',
    transformed_text: metadata.transformed_text,
    final_output: metadata.transformed_text,
    media_output: { config: 'tiny_image', status: 'success', run_id: metadata.run_id, output: metadata.run_id, media_stored: true, media_type: 'image', index: 0, url: `/api/media/image/${metadata.run_id}/0` }
  })
  t.same(answer.media_outputs, [answer.media_output])
  t.same(answer.stages, metadata.stages)

  t.same(events.map((e) => e.type === 'stage_started' || e.type === 'stage_completed' ? `${e.type}:${e.data.stage}` : e.type), EVENTS_OF_ONE_OUTPUT)
  t.same(events[0]!.data, {
    run_id: metadata.run_id, schema: 'dada', execution_mode: 'eco', safety_level: 'kids', seed: 42, output_configs: ['tiny_image'],
    output_choices: { source: 'request', chosen: ['tiny_image'], skipped: [] },
    stages: ['pre_interception', 'interception', 'pre_output_safety', 'generation']
  })
  t.same(events.find((e) => e.type === 'media_stored')!.data, answer.media_output)
  t.same(events.at(-1)!.data, answer)
})

t.test('the run says "running" while it generates', async (t) => {
  const gated = new GatedBackend()
  const { runner, storage, runsDir } = await setup(t, { backends: [gated] })
  const running = runner.run({ schema: 'dada', input_text: 'a cat', output_configs: ['gated_image'] })
  await gated.started()
  const [runId] = await storage.listRunIds()
  const during = await storage.getMetadata(runId!)
  t.equal(during.status, 'running')
  t.same(during.outputs, [])
  t.same(during.stages.map((s) => s.stage), ['translation', 'safety', 'interception', 'pre_output_safety'], 'the trail is on disk before an out-of-process backend starts')
  t.equal(during.transformed_text, (await readFile(join(runsDir, runId!, 'transformed_text.txt'), 'utf8')))
  gated.open()
  t.equal((await running).status, 'completed')
  t.equal((await storage.getMetadata(runId!)).status, 'completed')
})

t.test('defaults: eco, kids, the pipeline\'s outputs, a random seed per request', async (t) => {
  const gated = new GatedBackend()
  gated.open()
  const { runner, runsDir } = await setup(t, { backends: [gated] })
  const first = completed(await runner.run({ schema: 'fairytale', input_text: 'a castle', output_configs: ['gated_image'] }))
  const second = completed(await runner.run({ schema: 'fairytale', input_text: 'a castle', output_configs: ['gated_image'] }))
  t.equal(first.execution_mode, 'eco')
  t.equal(first.safety_level, 'kids')
  t.ok(Number.isInteger(first.seed) && first.seed >= 0 && first.seed < 2 ** 32)
  t.not(first.seed, second.seed, 'seeds are never shared between requests')
  t.same(gated.requests.map((r) => r.seed), [first.seed, second.seed], 'each backend call got its own request\'s seed')
  t.equal((await readMetadata(runsDir, first.run_id)).seed, first.seed)

  const prepared = runner.prepare({ schema: 'fairytale', input_text: 'x' })
  t.same(prepared.outputs.map((o) => o.config.name), ['builtin_image'], 'the pipeline\'s default for eco')
  t.same(prepared.request.output_configs, ['builtin_image'])
  prepared.release()
  const ultra = runner.prepare({ schema: 'fairytale', input_text: 'x', execution_mode: 'ultra', output_configs: ['tiny_image', 'tiny_audio'], aspect_ratio: '16:9', user_id: 'DOE_J', safety_level: 'youth' })
  t.match(ultra.request, { execution_mode: 'ultra', safety_level: 'youth', user_id: 'DOE_J', aspect_ratio: '16:9' })
  t.same(ultra.outputs.map((o) => [o.config.name, o.width, o.height]), [['tiny_image', 64, 64], ['tiny_audio', 64, 64]])
  ultra.release()
})

t.test('validation comes before anything is written: 404 and 503, queue places given back', async (t) => {
  const { runner, storage, registry } = await setup(t, { backends: [new GatedBackend()], queue: { concurrency: 1, limit: 1 } })
  t.throws(() => runner.prepare({ schema: 'cubism', input_text: 'x' }), { code: 'PIPELINE_NOT_FOUND', statusCode: 404 })
  t.throws(() => runner.prepare({ schema: 'dada', input_text: 'x', output_configs: ['nope'] }), { code: 'OUTPUT_CONFIG_NOT_FOUND', statusCode: 404 })
  t.throws(() => runner.prepare({ schema: 'dada', input_text: 'x', output_configs: ['tiny_image', 'sd35_large'] }), { code: 'BACKEND_UNAVAILABLE', statusCode: 503, message: /comfyui/ })
  t.throws(() => runner.prepare({ schema: 'dada', input_text: 'x', output_configs: ['gpt_image'] }), { code: 'BACKEND_UNAVAILABLE' }, 'a named config is never replaced by another')

  // Two places on one backend (one running, one waiting); a third is refused, and the refused request keeps none.
  const a = runner.prepare({ schema: 'dada', input_text: 'x', output_configs: ['gated_image'] })
  let full: unknown
  try {
    runner.prepare({ schema: 'dada', input_text: 'x', output_configs: ['tiny_image', 'gated_image', 'gated_image'] })
  } catch (err) {
    full = err
  }
  t.match(full, { code: 'QUEUE_FULL', statusCode: 503, retryAfterSeconds: 5 }, 'the refusal says how long to wait: no generation timed yet, a default guess')
  t.equal(registry.resolve('tiny_image').queue.waiting, 0, 'the builtin place taken before the refusal was given back')
  const b = runner.prepare({ schema: 'dada', input_text: 'x', output_configs: ['gated_image'] })
  t.equal(registry.resolve('gated_image').queue.waiting, 2)
  a.release()
  b.release()
  b.release()
  t.equal(registry.resolve('gated_image').queue.waiting, 0)
  t.same(await storage.listRunIds(), [], 'nothing was written')
})

t.test('a full queue\'s refusal carries the time its backend\'s generations take', async (t) => {
  const { runner } = await setup(t, { queue: { concurrency: 1, limit: 0 } })
  completed(await runner.run({ schema: 'dada', input_text: 'a cat', output_configs: ['tiny_image'] }))
  const held = runner.prepare({ schema: 'dada', input_text: 'x', output_configs: ['tiny_image'] })
  t.throws(() => runner.prepare({ schema: 'dada', input_text: 'x', output_configs: ['tiny_image'] }),
    { code: 'QUEUE_FULL', retryAfterSeconds: 1 }, 'a tiny builtin image takes well under a second: the minimum')
  held.release()
})

t.test('a stage that fails: the run is failed, the error recorded with its stage, internal details only in the log', async (t) => {
  const failing: PipelineStage = { name: 'broken_stage', run: async () => { throw new Error('ENOENT: /secret/path') } }
  const { runner, storage, runsDir, logged } = await setup(t, { stages: [new PreInterceptionStage(), failing, new GenerationStage()] })
  const { events, listener } = collect()
  const outcome = await runner.run({ schema: 'dada', input_text: 'a cat', output_configs: ['tiny_image'] }, listener)
  t.equal(outcome.status, 'failed')
  if (outcome.status !== 'failed') return
  t.match(outcome.error, { message: 'ENOENT: /secret/path' })
  t.same(outcome.event, { run_id: outcome.run_id, stage: 'broken_stage', statusCode: 500, error: 'Internal Server Error', code: 'INTERNAL_ERROR', message: 'internal server error' })
  const metadata = await readMetadata(runsDir, outcome.run_id!)
  t.equal(metadata.status, 'failed')
  t.same(storage.statuses.get(outcome.run_id!), ['running', 'failed'])
  t.match(metadata.errors, [{ stage: 'broken_stage', code: 'INTERNAL_ERROR', message: 'internal server error' }])
  t.notMatch(JSON.stringify(metadata), /secret/, 'no paths in the run record')
  t.same(metadata.outputs, [], 'nothing generated after the failure')
  t.same(events.at(-1), { type: 'error', data: outcome.event })
  t.match(logged, [{ message: 'pipeline run failed', details: { run_id: outcome.run_id } }])
})

t.test('anything thrown is recorded once: a string from a step, a string from a stage', async (t) => {
  const fromStep: PipelineStage = { name: 'step_stage', run: async (context) => { await context.step('odd', async () => { throw 'odd failure' }) } } // eslint-disable-line no-throw-literal
  const fromStage: PipelineStage = { name: 'bare_stage', run: async () => { throw 'bare failure' } } // eslint-disable-line no-throw-literal
  for (const stage of [fromStep, fromStage]) {
    const { runner, runsDir } = await setup(t, { stages: [stage] })
    const outcome = await runner.run({ schema: 'dada', input_text: 'a cat' })
    t.match(outcome, { status: 'failed', event: { code: 'INTERNAL_ERROR', stage: stage === fromStep ? 'odd' : 'bare_stage' } })
    const metadata = await readMetadata(runsDir, outcome.run_id!)
    t.same(metadata.errors.map((e: any) => e.stage), [stage === fromStep ? 'odd' : 'bare_stage'], 'recorded once')
  }
})

t.test('a listener that throws does not break the run', async (t) => {
  const { runner, logged } = await setup(t)
  const outcome = await runner.run({ schema: 'dada', input_text: 'a cat', output_configs: ['tiny_image'] }, () => { throw new Error('socket gone') })
  t.equal(outcome.status, 'completed')
  t.ok(logged.some((l) => l.message === 'a pipeline event listener failed'))
})

t.test('a backend that fails after storing one of two outputs: the output stays, the run fails with the backend\'s error', async (t) => {
  const { runner, runsDir } = await setup(t, { backends: [new FailingBackend('broken', undefined, 1)] })
  const { events, listener } = collect()
  const outcome = await runner.run({ schema: 'dada', input_text: 'a cat', output_configs: ['broken_image'] }, listener)
  t.equal(outcome.status, 'failed')
  if (outcome.status !== 'failed') return
  t.match(outcome.event, { stage: 'generation', statusCode: 502, code: 'BACKEND_FAILED', message: 'backend broken failed: out of memory' })
  const metadata = await readMetadata(runsDir, outcome.run_id!)
  t.equal(metadata.status, 'failed')
  t.match(metadata.outputs, [{ index: 0, filename: 'output_image.png', backend: 'broken', config: 'broken_image' }])
  t.match(metadata.stages.at(-1), { stage: 'generation', status: 'failed', output: 'output_image.png', provider: 'broken', error: { code: 'BACKEND_FAILED' } })
  t.same(metadata.errors.map((e: any) => [e.stage, e.code]), [['generation', 'BACKEND_FAILED']], 'recorded once')
  t.ok(events.some((e) => e.type === 'media_stored'), 'the stored output was announced')
  t.equal(events.at(-1)!.type, 'error')
})

t.test('a backend that ends without media, or throws at once, fails the run', async (t) => {
  const { runner, runsDir } = await setup(t, { backends: [new EmptyBackend(), new ThrowingBackend()] })
  const empty = await runner.run({ schema: 'dada', input_text: 'a cat', output_configs: ['empty_image'] })
  t.match(empty, { status: 'failed', event: { code: 'BACKEND_FAILED', message: 'backend empty failed: it finished without any media' } })
  const throwing = await runner.run({ schema: 'dada', input_text: 'a cat', output_configs: ['throwing_image'] })
  t.match(throwing, { status: 'failed', event: { code: 'INTERNAL_ERROR', stage: 'generation' } })
  t.equal((await readMetadata(runsDir, (throwing as { run_id: string }).run_id)).status, 'failed')
})

t.test('a backend\'s own moderation refusing the prompt blocks the run; another failure next to it fails it', async (t) => {
  const refusing = new FailingBackend('refusing', () => new GenerationBlockedError('refusing', 'the prompt was flagged by moderation'))
  const { runner, runsDir } = await setup(t, { backends: [refusing, new FailingBackend('broken')] })
  const { events, listener } = collect()
  const blocked = await runner.run({ schema: 'dada', input_text: 'a cat', output_configs: ['refusing_image', 'tiny_image'] }, listener)
  t.match(blocked, {
    status: 'blocked',
    answer: { status: 'blocked', stage: 'generation', reason: 'backend refusing refused the prompt: the prompt was flagged by moderation', codes: ['GENERATION_BLOCKED'] }
  })
  const metadata = await readMetadata(runsDir, blocked.run_id!)
  t.equal(metadata.status, 'blocked')
  t.equal(metadata.outputs.length, 1, 'what the other config made stays')
  t.match(metadata.stages.filter((s: any) => s.stage === 'generation').map((s: any) => s.status).sort(), ['blocked', 'completed'])
  t.equal(events.at(-1)!.type, 'blocked')

  const failed = await runner.run({ schema: 'dada', input_text: 'a cat', output_configs: ['refusing_image', 'broken_image'] })
  t.match(failed, { status: 'failed', event: { code: 'BACKEND_FAILED', statusCode: 502 } })
})

t.test('stages are added once, and run in the order they were added', async (t) => {
  const order: string[] = []
  const stage = (name: string): PipelineStage => ({ name, run: async () => { order.push(name) } })
  const { runner } = await setup(t, { stages: [stage('one'), stage('two')] })
  t.throws(() => { runner.addStage(stage('one')) }, /added twice/)
  runner.addStage(stage('three'))
  t.same(runner.stages.map((s) => s.name), ['one', 'two', 'three'])
  const answer = completed(await runner.run({ schema: 'dada', input_text: 'a cat', output_configs: ['tiny_image'] }))
  t.same(order, ['one', 'two', 'three'])
  t.equal(answer.media_output, null, 'no generation stage, no media')
  t.equal(answer.transformed_text, null)
  t.equal(answer.final_output, 'a cat')
  t.same(runner.listPipelines().map((p) => p.name), ['bauhaus', 'dada', 'fairytale', 'futurism'])
  t.same(runner.listPipelines().find((p) => p.name === 'dada')!.default_outputs.eco, ['sd35_large', 'builtin_image'])
})

t.test('close(): runs still going are stopped and recorded as failed; new ones are refused', async (t) => {
  const gated = new GatedBackend()
  const { runner, runsDir } = await setup(t, { backends: [gated] })
  const running = runner.run({ schema: 'dada', input_text: 'a cat', output_configs: ['gated_image'] })
  await gated.started()
  await runner.close()
  const outcome = await running
  t.match(outcome, { status: 'failed', event: { code: 'SERVICE_STOPPING', statusCode: 503, stage: 'generation' } })
  t.equal((await readMetadata(runsDir, outcome.run_id!)).status, 'failed')
  t.throws(() => runner.prepare({ schema: 'dada', input_text: 'x' }), { code: 'SERVICE_STOPPING' })
  await runner.settled()
})

t.test('settled() waits for every run', async (t) => {
  const gated = new GatedBackend()
  const { runner, storage } = await setup(t, { backends: [gated] })
  const prepared = runner.prepare({ schema: 'dada', input_text: 'a cat', output_configs: ['gated_image'] })
  void runner.execute(prepared)
  await gated.started()
  const settled = runner.settled()
  gated.open()
  await settled
  const [runId] = await storage.listRunIds()
  t.equal((await storage.getMetadata(runId!)).status, 'completed')
})

t.test('a run that cannot be created, or whose failure cannot be recorded, still answers', async (t) => {
  const { runner, runsDir, registry, logged } = await setup(t)
  await rm(runsDir, { recursive: true })
  const outcome = await runner.run({ schema: 'dada', input_text: 'a cat', output_configs: ['tiny_image'] })
  t.match(outcome, { status: 'failed', run_id: null, event: { run_id: null, stage: null, code: 'INTERNAL_ERROR' } })
  t.equal(registry.resolve('tiny_image').queue.waiting, 0, 'its queue place was given back')

  const { runner: second, storage } = await setup(t, {
    stages: [{ name: 'vanishing', run: async (context) => { await context.storage.blobs.deleteRun(context.runId); throw new Error('gone') } }]
  })
  const lost = await second.run({ schema: 'dada', input_text: 'a cat' })
  t.match(lost, { status: 'failed', event: { stage: 'vanishing', code: 'INTERNAL_ERROR' } })
  t.same(await storage.listRunIds(), [])
  t.ok(logged.length > 0)
})

t.test('outputSize: the config\'s size, or the aspect ratio at about the same area in multiples of 64', async (t) => {
  t.same(outputSize({ defaults: { width: 1024, height: 1024 } }, null), { width: 1024, height: 1024 })
  t.same(outputSize({}, null), { width: 1024, height: 1024 })
  t.same(outputSize({ defaults: { width: 1024, height: 1024 } }, '16:9'), { width: 1344, height: 768 })
  t.same(outputSize({ defaults: { width: 1024, height: 1024 } }, '9:16'), { width: 768, height: 1344 })
  t.same(outputSize({ defaults: { width: 1024, height: 1024 } }, '3:2'), { width: 1280, height: 832 })
  t.same(outputSize({ defaults: { width: 1024, height: 1024 } }, '1:1'), { width: 1024, height: 1024 })
  t.same(outputSize({ defaults: { width: 64, height: 64 } }, '9:16'), { width: 64, height: 64 }, 'never below 64')
})

t.test('checkDefaultOutputs names the pipeline file and the mode', async (t) => {
  const pipelines = await loadPipelines(new URL('pipelines', CONFIGS).pathname)
  const dada = pipelines.get('dada') as PipelineDefinition
  const known = new Set(['builtin_image', 'builtin_audio', 'gpt_image', 'openrouter_image', 'sd35_large'])
  t.doesNotThrow(() => { checkDefaultOutputs(pipelines, { hasOutputConfig: (n) => known.has(n) }, '/configs/pipelines') })
  const broken = new Map([['dada', { ...dada, default_outputs: { ...dada.default_outputs, fast: ['gpt_imag'] } }]])
  t.throws(() => { checkDefaultOutputs(broken, { hasOutputConfig: (n) => known.has(n) }, '/configs/pipelines') }, {
    code: 'INVALID_PIPELINE_DEFINITION',
    message: 'pipeline file /configs/pipelines/dada.json is invalid: default_outputs.fast: no output config named gpt_imag'
  })
  const inGroup = new Map([['dada', { ...dada, default_outputs: { ...dada.default_outputs, ultra: [['gpt_image', 'sd35_larg'], 'builtin_image'] } }]])
  t.throws(() => { checkDefaultOutputs(inGroup, { hasOutputConfig: (n) => known.has(n) }, '/configs/pipelines') }, { message: /default_outputs\.ultra: no output config named sd35_larg$/ }, 'a name inside a group too')
  const single = new Map([['dada', { ...dada, default_outputs: { ...dada.default_outputs, eco: 'builtin_imag' } }]])
  t.throws(() => { checkDefaultOutputs(single, { hasOutputConfig: (n) => known.has(n) }, '/configs/pipelines') }, { message: /default_outputs\.eco: no output config named builtin_imag$/ }, 'and a single name')
})
