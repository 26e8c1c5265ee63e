import { InvalidWorkflowError } from '../../errors.js'
import { isRecord } from '../../json.js'

// What ComfyUI's API speaks: workflows in API format, the history of a
// prompt, its output files and its error answers. No I/O here.

/** The backend's name, in errors and in the provenance of what it yields. */
export const COMFYUI = 'comfyui'

/** An API-format workflow: node id → node. */
export type ComfyuiWorkflow = Record<string, { class_type: string, inputs?: Record<string, unknown>, [key: string]: unknown }>

export interface ComfyuiHistoryEntry {
  prompt?: unknown[]
  outputs: Record<string, Record<string, unknown>>
  status?: {
    status_str?: string
    completed?: boolean
    messages?: Array<[string, Record<string, unknown>]>
  }
  meta?: Record<string, unknown>
}

export interface ComfyuiFileRef {
  node_id: string
  /** the output key that listed the file: images, audio, gifs, 3d, … (says nothing reliable about the media type) */
  key: string
  filename: string
  subfolder: string
  type: 'output' | 'temp'
}

// Keys whose lists hold file references that are not media.
const NON_MEDIA_FILE_KEYS = new Set(['latents'])

/**
 * Every file a finished prompt produced, in node order, then in list order:
 * any output key whose value is a list of file objects counts, because the key
 * depends on the node (SaveImage → images, SaveAudio → audio, VHS → gifs, …).
 */
export function listOutputFiles (entry: ComfyuiHistoryEntry): ComfyuiFileRef[] {
  const files: ComfyuiFileRef[] = []
  for (const [nodeId, nodeOutput] of Object.entries(entry.outputs ?? {})) {
    if (!isRecord(nodeOutput)) continue
    for (const [key, value] of Object.entries(nodeOutput)) {
      if (!Array.isArray(value) || NON_MEDIA_FILE_KEYS.has(key)) continue
      for (const item of value) {
        if (!isRecord(item) || typeof item.filename !== 'string' || item.filename === '') continue
        const type = item.type ?? 'output'
        if (type !== 'output' && type !== 'temp') continue
        files.push({
          node_id: nodeId,
          key,
          filename: item.filename,
          subfolder: typeof item.subfolder === 'string' ? item.subfolder : '',
          type
        })
      }
    }
  }
  return files
}

/** Why a finished prompt failed, or null when it succeeded. */
export function describeExecutionFailure (entry: ComfyuiHistoryEntry): string | null {
  if (entry.status?.status_str !== 'error') return null
  for (const message of entry.status.messages ?? []) {
    if (!Array.isArray(message) || !isRecord(message[1])) continue
    const [type, data] = message
    if (type === 'execution_error') {
      const exception = [data.exception_type, String(data.exception_message ?? '').trim()].filter((s) => s !== undefined && s !== '').join(': ')
      return `node ${nodeName(data.node_id, data.node_type)} failed: ${exception || 'no exception message'}`
    }
    if (type === 'execution_interrupted') {
      return `execution was interrupted at node ${nodeName(data.node_id, data.node_type)}`
    }
  }
  return 'ComfyUI reported an error without details'
}

/** Checks that an output config's workflow is in API format (exported with "Save (API)"). */
export function readApiWorkflow (value: unknown): ComfyuiWorkflow {
  if (!isRecord(value)) throw new InvalidWorkflowError('params.workflow must be an API-format workflow object')
  if (Array.isArray(value.nodes) || Array.isArray(value.links)) {
    throw new InvalidWorkflowError('params.workflow is a UI-format workflow (it has nodes/links); export it from ComfyUI with "Export (API)"')
  }
  const ids = Object.keys(value)
  if (ids.length === 0) throw new InvalidWorkflowError('params.workflow has no nodes')
  for (const id of ids) {
    const node = value[id]
    if (!isRecord(node) || typeof node.class_type !== 'string') {
      throw new InvalidWorkflowError(`node ${id} has no class_type`)
    }
    if (node.inputs !== undefined && !isRecord(node.inputs)) throw new InvalidWorkflowError(`node ${id} has inputs that are not an object`)
  }
  return value as ComfyuiWorkflow
}

export interface WorkflowValues {
  prompt: string
  negative_prompt: string
  seed: number
  width: number
  height: number
  filename_prefix: string
}

/** The placeholders a workflow may use: an input whose whole value is "{{name}}". */
export const WORKFLOW_PLACEHOLDERS = ['prompt', 'negative_prompt', 'seed', 'width', 'height', 'filename_prefix'] as const satisfies ReadonlyArray<keyof WorkflowValues>

const PLACEHOLDER = /^\{\{\s*([a-z_]+)\s*\}\}$/

/**
 * A copy of the workflow in which every string value that is exactly a
 * placeholder ("{{seed}}") is replaced; seed, width and height become numbers.
 * An unknown placeholder is an error rather than text sent to a model.
 */
export function fillWorkflow (workflow: ComfyuiWorkflow, values: WorkflowValues): ComfyuiWorkflow {
  return mapPlaceholders(workflow, (name, placeholder, node) => {
    if (!Object.hasOwn(values, name)) throw unknownPlaceholder(node, placeholder)
    return values[name as keyof WorkflowValues]
  })
}

/**
 * An output config's workflow, checked as far as it can be without ComfyUI:
 * API format (readApiWorkflow), every link pointing at a node of the
 * workflow, every placeholder one that fillWorkflow fills, and "{{prompt}}"
 * used somewhere. Throws INVALID_WORKFLOW naming the node.
 */
export function checkWorkflow (value: unknown): ComfyuiWorkflow {
  const workflow = readApiWorkflow(value)
  for (const [id, node] of Object.entries(workflow)) {
    for (const [input, link] of Object.entries(node.inputs ?? {})) {
      if (isLink(link) && !Object.hasOwn(workflow, link[0])) {
        throw new InvalidWorkflowError(`node ${nodeName(id, node.class_type)} input ${input} takes the output of node ${link[0]}, which is not in the workflow`)
      }
    }
  }
  const used = new Set<string>()
  mapPlaceholders(workflow, (name, placeholder, node) => {
    if (!(WORKFLOW_PLACEHOLDERS as readonly string[]).includes(name)) throw unknownPlaceholder(node, placeholder)
    used.add(name)
    return placeholder
  })
  if (!used.has('prompt')) throw new InvalidWorkflowError('no input is "{{prompt}}", so the prompt would never reach the model')
  return workflow
}

/** A link in API format: [source node id, output index]. */
function isLink (value: unknown): value is [string, number] {
  return Array.isArray(value) && value.length === 2 && typeof value[0] === 'string' && Number.isInteger(value[1])
}

function mapPlaceholders (workflow: ComfyuiWorkflow, replace: (name: string, placeholder: string, node: string) => unknown): ComfyuiWorkflow {
  const walk = (value: unknown, node: string): unknown => {
    if (typeof value === 'string') {
      const match = PLACEHOLDER.exec(value)
      return match ? replace(match[1] as string, value, node) : value
    }
    if (Array.isArray(value)) return value.map((item) => walk(item, node))
    if (isRecord(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, walk(v, node)]))
    return value
  }
  return Object.fromEntries(Object.entries(workflow).map(([id, node]) => [id, walk(node, nodeName(id, node.class_type))])) as ComfyuiWorkflow
}

function unknownPlaceholder (node: string, placeholder: string): Error {
  const known = WORKFLOW_PLACEHOLDERS.map((name) => `{{${name}}}`).join(', ')
  return new InvalidWorkflowError(`node ${node}: unknown placeholder ${placeholder} (known: ${known})`)
}

export function describeRejection (answer: Record<string, unknown>): string {
  const error = answer.error
  let summary: string
  if (isRecord(error)) {
    const message = typeof error.message === 'string' ? error.message : 'invalid prompt'
    const details = typeof error.details === 'string' && error.details !== '' && error.details !== message ? ` (${error.details})` : ''
    summary = `${typeof error.type === 'string' ? error.type + ': ' : ''}${message}${details}`
  } else {
    summary = String(error ?? 'invalid prompt')
  }
  const nodes = describeNodeErrors(answer.node_errors)
  return nodes.length > 0 ? `${summary}; ${nodes.join('; ')}` : summary
}

// node_errors is a dict keyed by node id; old servers send [] for "none".
export function describeNodeErrors (nodeErrors: unknown): string[] {
  if (!isRecord(nodeErrors)) return []
  return Object.entries(nodeErrors).map(([id, value]) => {
    const info = isRecord(value) ? value : {}
    const errors = Array.isArray(info.errors)
      ? info.errors.filter(isRecord).map((e) => [e.message, e.details].filter((s) => typeof s === 'string' && s !== '').join(': '))
      : []
    const outputs = Array.isArray(info.dependent_outputs) && info.dependent_outputs.length > 0
      ? ` (drops output node ${info.dependent_outputs.join(', ')})`
      : ''
    return `node ${nodeName(id, info.class_type)}: ${errors.join('; ') || 'invalid'}${outputs}`
  })
}

export function nodeName (id: unknown, classType: unknown): string {
  return typeof classType === 'string' && classType !== '' ? `${String(id)} (${classType})` : String(id)
}

export function describeFile (file: Pick<ComfyuiFileRef, 'filename' | 'subfolder' | 'type'>): string {
  return `${file.type}/${file.subfolder ? file.subfolder + '/' : ''}${file.filename}`
}
