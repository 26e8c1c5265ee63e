import type { RunMetadata } from '../../../schemas/run.js'
import type { RunIndexEntry, RunListFilters } from './run-index.js'

/**
 * What every index keeps of a run, whatever its tables: the listing's
 * entry, the facet rows its outputs give, and its texts folded for search.
 * SQLite and PostgreSQL store these alike, so they filter alike.
 */
export function indexEntry (metadata: RunMetadata, archive: string | null): RunIndexEntry {
  return {
    run_id: metadata.run_id.toLowerCase(),
    timestamp: metadata.timestamp,
    updated_at: metadata.updated_at,
    status: metadata.status,
    schema: metadata.schema,
    execution_mode: metadata.execution_mode,
    user_id: metadata.user_id ?? null,
    input_text: metadata.input_text,
    transformed_text: metadata.transformed_text ?? null,
    output_count: metadata.outputs.length,
    // Each distinct value once, in the order of the run's outputs.
    media_types: [...new Set(metadata.outputs.map((o) => o.type))],
    backends: [...new Set(metadata.outputs.map((o) => o.backend))],
    archive
  }
}

/** The facet keys of a run's outputs, each once: a type, a backend, and the two in one output. */
export function facetsOf (metadata: RunMetadata): string[] {
  return [...new Set(metadata.outputs.flatMap((o) => [facetKey(o.type, undefined), facetKey(undefined, o.backend), facetKey(o.type, o.backend)]))]
}

/** The facet row that says a run has an output of this type, of this backend, or both in one output. */
export function facetKey (mediaType: string | undefined, backend: string | undefined): string {
  if (mediaType !== undefined && backend !== undefined) return `tb:${mediaType}\u001f${backend}`
  return mediaType !== undefined ? `t:${mediaType}` : `b:${backend ?? ''}`
}

/** The same text for "Über", "über" and a decomposed "ü". */
export function fold (text: string): string {
  return text.normalize('NFC').toLowerCase()
}

/** Whether the kept per-status counts give this listing's total (no filter but status and archived). */
export function countedByStatus (filters: RunListFilters): boolean {
  return Object.entries(filters).every(([name, value]) => value === undefined || name === 'status' || name === 'archived')
}
