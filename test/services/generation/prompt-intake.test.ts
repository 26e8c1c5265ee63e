import t from 'tap'
import { BuiltinBackend } from '../../../services/backends/builtin/backend.js'
import type { GeneratorBackend, MediaItem } from '../../../services/backends/types.js'
import { addMediaFromPrompt } from '../../../services/generation/prompt-intake.js'
import type { RunStorage } from '../../../services/storage/run-storage.js'

const RUN_ID = '0193f1e2-7c4a-7b9e-8d2f-4c1a2b3c4d5e'

// Only what is reached before anything is stored.
const storage = { getMetadata: async () => ({}) } as unknown as RunStorage

const registry = (...backends: GeneratorBackend[]) => ({ backend: (name: string) => backends.find((b) => b.name === name) })

t.test('a backend that is missing, not configured, or cannot collect: BACKEND_UNAVAILABLE naming it', async (t) => {
  const nothing = async function * (): AsyncGenerator<MediaItem> {}
  const unconfigured: GeneratorBackend = { name: 'lab', unavailableReason: () => 'LAB_URL is not set', generate: nothing, collect: nothing }
  const cases: Array<[GeneratorBackend[], string, RegExp]> = [
    [[], 'lab', /backend lab is not available: not registered/],
    [[unconfigured], 'lab', /backend lab is not available: LAB_URL is not set/],
    [[new BuiltinBackend()], 'builtin', /backend builtin is not available: it cannot collect a job submitted elsewhere/]
  ]
  for (const [backends, name, message] of cases) {
    await t.rejects(addMediaFromPrompt(storage, registry(...backends), name, RUN_ID, 'p1', 'cfg'), { code: 'BACKEND_UNAVAILABLE', statusCode: 503, message })
  }
})

t.test('a job that yields nothing and says nothing is a failure of its backend', async (t) => {
  const asked: string[] = []
  const quiet: GeneratorBackend = {
    name: 'lab',
    unavailableReason: () => null,
    generate: async function * (): AsyncGenerator<MediaItem> {},
    collect: async function * (promptId): AsyncGenerator<MediaItem> { asked.push(promptId) }
  }
  await t.rejects(addMediaFromPrompt(storage, registry(quiet), 'lab', RUN_ID, 'p1', 'cfg', 'image'), {
    code: 'BACKEND_FAILED', message: 'backend lab failed: prompt p1 produced no files'
  })
  t.same(asked, ['p1'])
})
