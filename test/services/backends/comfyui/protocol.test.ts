import t from 'tap'
import {
  checkWorkflow, describeExecutionFailure, fillWorkflow, listOutputFiles, WORKFLOW_PLACEHOLDERS, type ComfyuiHistoryEntry, type ComfyuiWorkflow
} from '../../../../services/backends/comfyui/protocol.js'
import { imageWorkflow, sd35, stableAudio } from './setup.js'

t.test('listOutputFiles reads every file list and nothing else', async (t) => {
  const entry: ComfyuiHistoryEntry = {
    outputs: {
      12: { audio: [{ filename: 'ComfyUI_00001_.flac', subfolder: 'audio', type: 'output' }] },
      9: {
        images: [
          { filename: 'run1_00001_.png', subfolder: 'svc', type: 'output' },
          { filename: 'run1_00002_.png', subfolder: 'svc', type: 'output' },
          // a node that ran twice has its lists concatenated
          { filename: 'run1_00003_.png', subfolder: 'svc', type: 'output' }
        ]
      },
      15: { images: [{ filename: 'ComfyUI_00001_.mp4', subfolder: 'video', type: 'output' }], animated: [true] },
      20: { gifs: [{ filename: 'AnimateDiff_00001.mp4', subfolder: '', type: 'output', format: 'video/h264-mp4', frame_rate: 8.0, fullpath: '/srv/x' }] },
      21: { text: ['a caption'], latents: [{ filename: 'x.latent', subfolder: 'latents', type: 'output' }] },
      22: { images: [{ filename: 'in.png', subfolder: '', type: 'input' }, { filename: '' }, null, 'x', { filename: 'nosub.png' }] },
      23: { unfinished_batch: [true] },
      '30:2': { '3d': [{ filename: 'mesh_00001_.glb', subfolder: 'mesh', type: 'output' }] },
      24: 'not an object' as unknown as Record<string, unknown>
    }
  }
  t.same(listOutputFiles(entry).map((f) => [f.node_id, f.key, f.type, f.subfolder, f.filename]), [
    ['9', 'images', 'output', 'svc', 'run1_00001_.png'],
    ['9', 'images', 'output', 'svc', 'run1_00002_.png'],
    ['9', 'images', 'output', 'svc', 'run1_00003_.png'],
    ['12', 'audio', 'output', 'audio', 'ComfyUI_00001_.flac'],
    ['15', 'images', 'output', 'video', 'ComfyUI_00001_.mp4'],
    ['20', 'gifs', 'output', '', 'AnimateDiff_00001.mp4'],
    ['22', 'images', 'output', '', 'nosub.png'],
    ['30:2', '3d', 'output', 'mesh', 'mesh_00001_.glb']
  ])
})

t.test('describeExecutionFailure', async (t) => {
  const entry = (status: ComfyuiHistoryEntry['status']): ComfyuiHistoryEntry => ({ outputs: {}, ...(status ? { status } : {}) })
  t.equal(describeExecutionFailure(entry(undefined)), null, 'very old servers have no status')
  t.equal(describeExecutionFailure(entry({ status_str: 'success', completed: true, messages: [] })), null)
  t.equal(describeExecutionFailure(entry({ status_str: 'error', completed: false })), 'ComfyUI reported an error without details')
  t.equal(describeExecutionFailure(entry({
    status_str: 'error',
    messages: [['execution_start', {}], ['execution_error', { node_id: '5', exception_message: '' }]]
  })), 'node 5 failed: no exception message')
})

t.test('checkWorkflow: what can be known without ComfyUI is checked, naming the node', async (t) => {
  t.equal(checkWorkflow(sd35.params.workflow), sd35.params.workflow, 'the shipped image workflow passes as it is')
  t.doesNotThrow(() => checkWorkflow(stableAudio.params.workflow))
  const input = (graph: ComfyuiWorkflow, node: string): Record<string, unknown> => graph[node]!.inputs!
  const cases: Array<[string, unknown, RegExp]> = [
    ['UI format', { last_node_id: 9, nodes: [{ id: 3 }], links: [] }, /UI-format workflow/],
    ['not an object', 'workflow.json', /API-format workflow object/],
    ['a link to a missing node', imageWorkflow((g) => { input(g, '6').clip = ['12', 1] }), /node 6 \(CLIPTextEncode\) input clip takes the output of node 12, which is not in the workflow/],
    ['an unknown placeholder', imageWorkflow((g) => { input(g, '3').seed = '{{ sede }}' }), /node 3 \(KSampler\): unknown placeholder \{\{ sede \}\} \(known: \{\{prompt\}\}, /],
    ['a placeholder deep in a list', imageWorkflow((g) => { input(g, '9').extra = [['{{steps}}']] }), /node 9 \(SaveImage\): unknown placeholder \{\{steps\}\}/],
    ['no prompt anywhere', imageWorkflow((g) => { input(g, '6').text = 'a fixed text' }), /no input is "\{\{prompt\}\}"/]
  ]
  for (const [name, workflow, message] of cases) {
    t.throws(() => checkWorkflow(workflow), { code: 'INVALID_WORKFLOW', message }, name)
  }
  // Lists that are not [node id, output index] are values, not links.
  t.doesNotThrow(() => checkWorkflow(imageWorkflow((g) => { input(g, '5').sizes = [512, 0]; input(g, '5').names = ['a', 'b', 'c'] })))
  // Every placeholder checkWorkflow accepts is one fillWorkflow fills.
  const everyPlaceholder = imageWorkflow((g) => { input(g, '6').all = WORKFLOW_PLACEHOLDERS.map((name) => `{{${name}}}`) })
  const filled = fillWorkflow(checkWorkflow(everyPlaceholder), { prompt: 'p', negative_prompt: 'n', seed: 1, width: 2, height: 3, filename_prefix: 'f' })
  t.same(filled['6']?.inputs?.all, ['p', 'n', 1, 2, 3, 'f'])
})

t.test('fillWorkflow names the node of an unknown placeholder', async (t) => {
  const workflow = imageWorkflow((g) => { g['7']!.inputs!.text = '{{negative}}' })
  t.throws(() => fillWorkflow(workflow, { prompt: 'p', negative_prompt: '', seed: 1, width: 2, height: 3, filename_prefix: 'x' }), {
    code: 'INVALID_WORKFLOW', message: /node 7 \(CLIPTextEncode\): unknown placeholder \{\{negative\}\}/
  })
})
