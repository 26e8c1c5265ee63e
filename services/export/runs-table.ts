import type { MediaOutput, RunMetadata } from '../../schemas/run.js'

/** The folder of the archive that holds the run folders. */
export const RUNS_FOLDER = 'runs'

/** Where a file of a run is inside the archive (and, relative, next to index.html once unpacked). */
export function archivePath (runId: string, filename: string): string {
  return `${RUNS_FOLDER}/${runId}/${filename}`
}

export type Cell = string | number | null
/** One row of runs.csv and runs.xlsx, by column key. */
export type Row = Record<string, Cell>

export interface Column {
  key: string
  /** for spreadsheets: a width in characters */
  width: number
}

const RUN_COLUMNS: Column[] = [
  { key: 'run_id', width: 38 },
  { key: 'timestamp', width: 25 },
  { key: 'updated_at', width: 25 },
  { key: 'status', width: 10 },
  { key: 'user_id', width: 14 },
  { key: 'schema', width: 12 },
  { key: 'execution_mode', width: 8 },
  { key: 'safety_level', width: 8 },
  { key: 'input_text', width: 40 },
  { key: 'transformed_text', width: 60 }
]

const OUTPUT_COLUMNS: Column[] = [
  { key: 'errors', width: 30 },
  { key: 'output_index', width: 6 },
  { key: 'media_type', width: 8 },
  { key: 'format', width: 7 },
  { key: 'mime_type', width: 12 },
  { key: 'file_size_bytes', width: 12 },
  { key: 'width', width: 7 },
  { key: 'height', width: 7 },
  { key: 'duration_seconds', width: 9 },
  { key: 'sha256', width: 66 },
  { key: 'backend', width: 12 },
  { key: 'config', width: 16 },
  { key: 'seed', width: 12 },
  { key: 'created_at', width: 25 },
  { key: 'path', width: 70 }
]

/**
 * The columns of the tables: the run's fields, a text and a decision column
 * for every stage name the exported runs have (in the order they first
 * appear), then the facts of one output.
 */
export function tableColumns (stageNames: readonly string[]): Column[] {
  return [
    ...RUN_COLUMNS,
    ...stageNames.flatMap((stage) => [{ key: `${stage}_text`, width: 40 }, { key: `${stage}_decision`, width: 30 }]),
    ...OUTPUT_COLUMNS
  ]
}

/** What a run's stages of one name said: their texts and decisions, one line each. */
export interface StageSummary {
  stage: string
  text: string
  decision: string
}

/**
 * The stages of a run by name, in order. A name can repeat (the output
 * safety check runs once per media type, generation once per output
 * config): its texts and decisions are joined line by line.
 */
export function stageSummaries (metadata: RunMetadata): StageSummary[] {
  const byName = new Map<string, { texts: string[], decisions: string[] }>()
  for (const record of metadata.stages) {
    const entry = byName.get(record.stage) ?? { texts: [], decisions: [] }
    byName.set(record.stage, entry)
    if (typeof record.output === 'string' && record.output !== '') entry.texts.push(record.output)
    if (record.decision !== undefined && record.decision !== null) entry.decisions.push(decisionText(record.decision))
  }
  return [...byName].map(([stage, { texts, decisions }]) => ({ stage, text: texts.join('\n'), decision: decisions.join('\n') }))
}

/** A stage's decision as one line: a safety verdict as words, anything else as JSON. */
export function decisionText (decision: unknown): string {
  if (typeof decision === 'string') return decision
  if (isVerdict(decision)) {
    const codes = decision.codes.length > 0 ? ` [${decision.codes.join(', ')}]` : ''
    const reason = typeof decision.reason === 'string' && decision.reason !== '' ? `: ${decision.reason}` : ''
    return `${decision.allowed ? 'allowed' : 'blocked'}${reason}${codes}${decision.fallback_used === true ? ' (fallback)' : ''}`
  }
  return JSON.stringify(decision)
}

function isVerdict (value: unknown): value is { allowed: boolean, reason?: unknown, codes: string[], fallback_used?: unknown } {
  if (typeof value !== 'object' || value === null) return false
  const { allowed, codes } = value as Record<string, unknown>
  return typeof allowed === 'boolean' && Array.isArray(codes) && codes.every((c) => typeof c === 'string')
}

/** The seed an output was made with: its generation stage's, else the run's. */
export function outputSeed (metadata: RunMetadata, output: MediaOutput): number | null {
  for (const record of metadata.stages) {
    if (record.stage !== 'generation') continue
    const details = record.details as { seed?: unknown, outputs?: Array<{ index?: unknown }> } | undefined
    if (typeof details?.seed === 'number' && details.outputs?.some((o) => o.index === output.index) === true) return details.seed
  }
  return metadata.seed ?? null
}

/** The rows of one run: one per output, one for a run without outputs. */
export function runRows (metadata: RunMetadata, stageNames: readonly string[]): Row[] {
  const run: Row = {
    run_id: metadata.run_id,
    timestamp: metadata.timestamp,
    updated_at: metadata.updated_at,
    status: metadata.status,
    user_id: metadata.user_id,
    schema: metadata.schema,
    execution_mode: metadata.execution_mode,
    safety_level: metadata.safety_level,
    input_text: metadata.input_text,
    transformed_text: metadata.transformed_text
  }
  const stages = new Map(stageSummaries(metadata).map((s) => [s.stage, s]))
  for (const name of stageNames) {
    run[`${name}_text`] = stages.get(name)?.text ?? null
    run[`${name}_decision`] = stages.get(name)?.decision ?? null
  }
  run.errors = metadata.errors.length > 0 ? metadata.errors.map((e) => `${e.code}: ${e.message}`).join('\n') : null
  if (metadata.outputs.length === 0) return [run]
  return metadata.outputs.map((output) => ({
    ...run,
    output_index: output.index,
    media_type: output.type,
    format: output.format,
    mime_type: output.mime_type,
    file_size_bytes: output.file_size_bytes,
    width: output.width,
    height: output.height,
    duration_seconds: output.duration_seconds,
    sha256: output.sha256,
    backend: output.backend,
    config: output.config,
    seed: outputSeed(metadata, output),
    created_at: output.created_at,
    path: archivePath(metadata.run_id, output.filename)
  }))
}

/** The rows of every run, in order, made as they are read. */
export async function * tableRows (runs: AsyncIterable<RunMetadata>, stageNames: readonly string[]): AsyncGenerator<Row> {
  for await (const metadata of runs) yield * runRows(metadata, stageNames)
}

/** A creation time for people: `2025-11-04 14:31:22 UTC`. */
export function formatTime (iso: string): string {
  const time = new Date(iso)
  return Number.isNaN(time.getTime()) ? iso : `${time.toISOString().slice(0, 19).replace('T', ' ')} UTC`
}

export function formatBytes (bytes: number): string {
  if (bytes < 1024) return `${bytes} B`
  const units = ['KB', 'MB', 'GB', 'TB']
  let value = bytes / 1024
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${value.toFixed(1)} ${units[unit]!}`
}

/** An output's facts on one line: type, format, size, duration, backend and config, seed. */
export function outputFacts (metadata: RunMetadata, output: MediaOutput): string {
  const seed = outputSeed(metadata, output)
  return [
    output.type,
    output.format,
    output.width !== null && output.height !== null ? `${output.width}×${output.height}` : null,
    output.duration_seconds !== null ? `${output.duration_seconds.toFixed(2)} s` : null,
    formatBytes(output.file_size_bytes),
    `${output.backend}/${output.config}`,
    seed !== null ? `seed ${seed}` : null
  ].filter((part) => part !== null).join(' · ')
}
