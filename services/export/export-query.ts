import { FormatRegistry } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { ExportQuery } from '../../schemas/exports-api.js'
import { InvalidRunFilterError } from '../errors.js'
import { parseExportFormats, type ExportRequest } from './export-archive.js'

// TypeBox checks formats only when told what they mean (the HTTP validator has its own).
if (!FormatRegistry.Has('date-time')) FormatRegistry.Set('date-time', (value) => !Number.isNaN(Date.parse(value)) && /^\d{4}-\d{2}-\d{2}T/.test(value))
if (!FormatRegistry.Has('date')) FormatRegistry.Set('date', (value) => /^\d{4}-\d{2}-\d{2}$/.test(value) && !Number.isNaN(Date.parse(value)))

/**
 * GET /api/exports's query as an export request: the listing's filters and
 * the formats. The one mapping for the route and `runstore export`.
 */
export function exportRequestOf (query: ExportQuery): ExportRequest {
  const { formats, ...filters } = query
  return { filters, formats: parseExportFormats(formats) }
}

/**
 * For a caller without the HTTP validator (the CLI): the same query, given
 * as text, checked against the route's own schema, then mapped. Refuses a
 * filter the route would refuse (INVALID_FILTER, naming it).
 */
export function checkedExportRequest (given: Record<string, string | undefined>): ExportRequest {
  const query = Object.fromEntries(Object.entries(given).filter(([, value]) => value !== undefined))
  const problem = Value.Errors(ExportQuery, query).First()
  if (problem !== undefined) throw new InvalidRunFilterError(`${problem.path.slice(1) || 'query'}: ${problem.message}`)
  return exportRequestOf(query as ExportQuery)
}
