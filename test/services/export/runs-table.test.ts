import t from 'tap'
import type { MediaOutput, RunMetadata } from '../../../schemas/run.js'
import { decisionText, formatBytes, outputFacts, outputSeed, runRows, stageSummaries, tableColumns } from '../../../services/export/runs-table.js'

const output = (index: number, extra: Partial<MediaOutput> = {}): MediaOutput => ({
  index,
  type: 'image',
  filename: index === 0 ? 'output_image.png' : `output_image_${index + 1}.png`,
  backend: 'comfyui',
  config: 'sd35_large',
  file_size_bytes: 1536,
  format: 'png',
  mime_type: 'image/png',
  width: 1024,
  height: 768,
  duration_seconds: null,
  sha256: 'a'.repeat(64),
  created_at: '2025-11-04T14:31:29.860Z',
  source: { kind: 'comfyui' },
  ...extra
})

const run: RunMetadata = {
  metadata_version: 1,
  run_id: '0193f1e2-7c4a-7b9e-8d2f-4c1a2b3c4d5e',
  user_id: 'DOE_J',
  timestamp: '2025-11-04T14:31:22.123Z',
  updated_at: '2025-11-04T14:31:29.870Z',
  status: 'completed',
  schema: 'dada',
  execution_mode: 'eco',
  safety_level: 'kids',
  input_text: 'Eine Blume',
  transformed_text: 'A flower',
  seed: 7,
  stages: [
    { stage: 'safety', status: 'completed', output: 'Eine Blume', decision: { allowed: true, reason: null, codes: [], fallback_used: true } },
    { stage: 'pre_output_safety', status: 'completed', output: 'A flower', decision: { allowed: true, reason: null, codes: [] }, details: { media_type: 'image' } },
    { stage: 'pre_output_safety', status: 'blocked', output: 'A flower', decision: { allowed: false, reason: 'too loud', codes: ['sound.loud', 'sound.scary'] }, details: { media_type: 'audio' } },
    { stage: 'generation', status: 'completed', output: 'output_image.png', details: { seed: 42, outputs: [{ index: 0 }] } },
    { stage: 'generation', status: 'completed', output: 'output_image_2.png', decision: 'retried once', details: { config: 'other' } },
    { stage: 'judge', status: 'completed', output: null, decision: { score: 0.8 } }
  ],
  outputs: [output(0), output(1, { type: 'audio', format: 'wav', width: null, height: null, duration_seconds: 1.5, file_size_bytes: 3 * 1024 * 1024 })],
  errors: []
}

t.test('a stage name that repeats gives one text and one decision column, line by line', async (t) => {
  t.same(stageSummaries(run), [
    { stage: 'safety', text: 'Eine Blume', decision: 'allowed (fallback)' },
    { stage: 'pre_output_safety', text: 'A flower\nA flower', decision: 'allowed\nblocked: too loud [sound.loud, sound.scary]' },
    { stage: 'generation', text: 'output_image.png\noutput_image_2.png', decision: 'retried once' },
    { stage: 'judge', text: '', decision: '{"score":0.8}' }
  ])
  const columns = tableColumns(['safety', 'judge']).map((c) => c.key)
  t.same(columns.slice(10, 14), ['safety_text', 'safety_decision', 'judge_text', 'judge_decision'])
  const rows = runRows(run, ['safety', 'judge', 'translation'])
  t.equal(rows.length, 2)
  t.match(rows[0], { safety_text: 'Eine Blume', judge_text: '', judge_decision: '{"score":0.8}', translation_text: null, translation_decision: null })
  t.same(Object.keys(rows[0]!), [...tableColumns(['safety', 'judge', 'translation']).map((c) => c.key)], 'a value for every column, in order')
})

t.test('the seed of an output: its generation\'s, else the run\'s', async (t) => {
  t.equal(outputSeed(run, run.outputs[0]!), 42)
  t.equal(outputSeed(run, run.outputs[1]!), 7)
  t.equal(outputSeed({ ...run, seed: undefined }, run.outputs[1]!), null, 'an upload into a run made by a client')
  t.same(runRows({ ...run, seed: null }, []).map((row) => row.seed), [42, null])
})

t.test('decisions as words where they are verdicts', async (t) => {
  t.equal(decisionText({ allowed: false, reason: '', codes: [] }), 'blocked')
  t.equal(decisionText({ allowed: true, codes: ['x', 1] }), '{"allowed":true,"codes":["x",1]}', 'not a verdict: as JSON')
  t.equal(decisionText(true), 'true')
})

t.test('sizes and facts for people', async (t) => {
  t.same([0, 1023, 1024, 1536, 5 * 1024 ** 2, 3 * 1024 ** 3, 2 * 1024 ** 5].map(formatBytes), ['0 B', '1023 B', '1.0 KB', '1.5 KB', '5.0 MB', '3.0 GB', '2048.0 TB'])
  t.equal(outputFacts(run, run.outputs[0]!), 'image · png · 1024×768 · 1.5 KB · comfyui/sd35_large · seed 42')
  t.equal(outputFacts({ ...run, seed: null }, run.outputs[1]!), 'audio · wav · 1.50 s · 3.0 MB · comfyui/sd35_large')
})
