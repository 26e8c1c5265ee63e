import t from 'tap'
import { BuiltinBackend } from '../../../services/backends/builtin/backend.js'
import type { OutputConfig } from '../../../services/backends/output-configs.js'
import { BackendRegistry } from '../../../services/backends/registry.js'
import { BackendFailedError, BackendTimeoutError, GenerationBlockedError, InsufficientStorageError } from '../../../services/errors.js'
import { prepareRun } from '../../../services/pipeline/prepare-run.js'
import type { PipelineDefinition } from '../../../services/pipeline/pipeline-definitions.js'
import { GatedBackend } from '../../pipeline-setup.js'

const output = (name: string, backend: string, mediaType: 'image' | 'audio' = 'image'): OutputConfig =>
  ({ name, description: name, media_type: mediaType, backend, params: { media_type: mediaType } })

function makeRegistry (options: { downMs?: number, limit?: number } = {}) {
  let now = 1_000_000
  const configs = new Map([output('gated_image', 'gated'), output('other_gated', 'gated'), output('tiny_image', 'builtin'), output('nowhere', 'missing')].map((c) => [c.name, c]))
  const registry = new BackendRegistry(configs, { limit: options.limit ?? 0, downMs: options.downMs ?? 60_000, now: () => now })
  registry.register(new GatedBackend(), { concurrency: 1 })
  registry.register(new BuiltinBackend(), { concurrency: 1 })
  return { registry, advance: (ms: number) => { now += ms } }
}

t.test('availability: not configured, down for BACKEND_DOWN_MS after an upstream failure, queue full', async (t) => {
  const { registry, advance } = makeRegistry()
  t.same(registry.availability('tiny_image'), { available: true })
  t.same(registry.availability('nowhere'), { available: false, reason: 'not_configured', backend: 'missing', detail: 'no backend named missing' })

  registry.noteGeneration('gated', new GenerationBlockedError('gated', 'flagged'))
  registry.noteGeneration('gated', new InsufficientStorageError())
  t.same(registry.availability('gated_image'), { available: true }, 'a refused prompt or a full disk is not the backend\'s failure')

  registry.noteGeneration('gated', new BackendTimeoutError('gated', 'no answer'))
  advance(15_000)
  t.same(registry.availability('gated_image'), {
    available: false, reason: 'down', backend: 'gated', detail: 'its last generation failed 15 s ago (BACKEND_TIMEOUT); it is tried again 45 s from now'
  })
  advance(45_000)
  t.same(registry.availability('gated_image'), { available: true }, 'tried again once BACKEND_DOWN_MS has passed')

  registry.noteGeneration('gated', new BackendFailedError('gated', 'out of memory'))
  t.match(registry.availability('other_gated'), { reason: 'down' }, 'every config on that backend')
  registry.noteGeneration('gated', null)
  t.same(registry.availability('gated_image'), { available: true }, 'a success clears it')

  const place = registry.queue('builtin').reserve()
  t.same(registry.availability('tiny_image'), { available: false, reason: 'queue_full', backend: 'builtin', detail: '0 running and 1 waiting, no room for more' })
  place.release()
})

t.test('BACKEND_DOWN_MS 0 never marks a backend down', async (t) => {
  const { registry } = makeRegistry({ downMs: 0 })
  registry.noteGeneration('gated', new BackendFailedError('gated', 'out of memory'))
  t.same(registry.availability('gated_image'), { available: true })
})

t.test('a group whose configs share a queue with room for one is passed over as queue_full, its place given back', async (t) => {
  const { registry: backends } = makeRegistry()
  const pipeline = {
    name: 'grouped',
    negative_prompt: '',
    default_outputs: { eco: [['gated_image', 'other_gated'], 'tiny_image'], fast: 'tiny_image', ultra: 'tiny_image' }
  } as unknown as PipelineDefinition
  const prepared = prepareRun({ schema: 'grouped', input_text: 'x' }, new Map([['grouped', pipeline]]), backends)
  t.same(prepared.request.output_choices, {
    source: 'default_outputs',
    chosen: ['tiny_image'],
    skipped: [{ output_configs: ['gated_image', 'other_gated'], config: 'gated_image', backend: 'gated', reason: 'queue_full', detail: 'too many generations are waiting for gated; try again shortly' }]
  })
  t.equal(backends.queue('gated').waiting, 0, 'the place the group took first was given back')
  prepared.release()
})
