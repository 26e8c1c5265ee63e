import t from 'tap'
import { readFile } from 'node:fs/promises'
import { BuiltinBackend } from '../../../services/backends/builtin/backend.js'
import { BACKEND_FACTORIES, createBackends } from '../../../services/backends/create-backends.js'
import type { BackendFactory } from '../../../services/backends/types.js'
import { FetchPolicy } from '../../../services/http/address-policy.js'
import { tempRunsDir, testConfig } from '../../helper.js'
import { backendOutput, testConfigsDir } from '../../pipeline-setup.js'

const sd35 = JSON.parse(await readFile(new URL('../../../configs/outputs/sd35_large.json', import.meta.url), 'utf8'))

/** How many places a backend's queue gives before QUEUE_FULL, with GENERATION_QUEUE_LIMIT 0: its concurrency. */
function places (queue: { reserve: () => { release: () => void } }): number {
  const taken = []
  try {
    for (;;) taken.push(queue.reserve())
  } catch (err) {
    if ((err as { code?: string }).code !== 'QUEUE_FULL') throw err
  }
  for (const reservation of taken) reservation.release()
  return taken.length
}

t.test('every backend, in order, with its own concurrency; the ComfyUI host becomes fetchable', async (t) => {
  const fetchPolicy = new FetchPolicy([])
  const config = testConfig(await tempRunsDir(t), {
    COMFYUI_URL: 'http://gpu.lab.internal:8188', COMFYUI_CONCURRENCY: '2', BACKEND_CONCURRENCY: '3', GENERATION_QUEUE_LIMIT: '0'
  })
  const registry = await createBackends(config, { fetchPolicy })
  t.teardown(() => registry.close())
  t.same(registry.backends.map((b) => b.name), ['builtin', 'comfyui', 'openai', 'openrouter', 'replicate'])
  t.same(BACKEND_FACTORIES.map((f) => f.name), ['builtin', 'comfyui', 'openai', 'openrouter', 'replicate'])
  t.equal(places(registry.queue('comfyui')), 2)
  for (const name of ['builtin', 'openai', 'openrouter', 'replicate']) t.equal(places(registry.queue(name)), 3, name)
  t.ok(fetchPolicy.isAllowedHost('gpu.lab.internal'))
  t.same(registry.listOutputConfigs().map((c) => c.name).sort(), ['builtin_audio', 'builtin_image', 'comfyui_audio', 'gpt_image', 'openrouter_image', 'replicate_flux', 'sd35_large'])
  t.equal(registry.resolve('sd35_large').backend.name, 'comfyui')
})

t.test('a broken output config stops the start naming its file, whether or not its backend is configured', async (t) => {
  const broken = { ...sd35, name: 'broken_sd35', params: { workflow: { ...sd35.params.workflow, 6: { class_type: 'CLIPTextEncode', inputs: { text: '{{prompt}}', clip: ['44', 1] } } } } }
  const configsDir = await testConfigsDir(t, { outputs: [broken] })
  const runsDir = await tempRunsDir(t)
  for (const env of [{}, { COMFYUI_URL: 'http://127.0.0.1:9' }] as Array<Record<string, string>>) {
    await t.rejects(createBackends(testConfig(runsDir, { CONFIGS_DIR: configsDir, ...env }), { fetchPolicy: new FetchPolicy() }), {
      code: 'INVALID_OUTPUT_CONFIG',
      message: `output config file ${configsDir}/outputs/broken_sd35.json is invalid: invalid ComfyUI workflow: node 6 (CLIPTextEncode) input clip takes the output of node 44, which is not in the workflow`
    })
  }
  const typo = await testConfigsDir(t, { outputs: [{ ...backendOutput('typo_image', 'openai'), params: { qualty: 'high' } }] })
  await t.rejects(createBackends(testConfig(runsDir, { CONFIGS_DIR: typo }), { fetchPolicy: new FetchPolicy() }), {
    code: 'INVALID_OUTPUT_CONFIG', message: new RegExp(`${typo}/outputs/typo_image\\.json is invalid: params\\.qualty is not a parameter of the openai backend`)
  })
})

t.test('a config naming a backend that does not exist is listed as unavailable, not a start error', async (t) => {
  const configsDir = await testConfigsDir(t, { outputs: [{ ...backendOutput('elsewhere_image', 'elsewhere'), params: { anything: true } }] })
  const registry = await createBackends(testConfig(await tempRunsDir(t), { CONFIGS_DIR: configsDir }), { fetchPolicy: new FetchPolicy() })
  t.match(registry.listOutputConfigs().find((c) => c.name === 'elsewhere_image'), { available: false, unavailable_reason: 'no backend named elsewhere' })
})

t.test('factories: any list, checked to make the backend they name', async (t) => {
  const config = testConfig(await tempRunsDir(t))
  const deps = { fetchPolicy: new FetchPolicy() }
  const only: BackendFactory = { name: 'builtin', concurrency: () => 1, create: () => new BuiltinBackend() }
  const registry = await createBackends(config, deps, [only])
  t.same(registry.backends.map((b) => b.name), ['builtin'])
  t.match(registry.listOutputConfigs().find((c) => c.name === 'sd35_large'), { available: false, unavailable_reason: 'no backend named comfyui' })
  await t.rejects(createBackends(config, deps, [{ ...only, name: 'painter' }]), /the painter factory made a backend named builtin/)
})
