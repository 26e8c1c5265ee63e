import { Type, type Static } from '@sinclair/typebox'
import { EXPORT_FILES, EXPORT_FORMATS } from '../services/export/export-archive.js'
import { BINARY } from './common.js'
import { ListRunsQuery } from './runs-api.js'

// What GET /api/exports takes and answers.

export const ExportQuery = Type.Composite([
  // the listing's filters; an export has no pages
  Type.Omit(ListRunsQuery, ['limit', 'cursor', 'order', 'archived']),
  Type.Object({
    formats: Type.Optional(Type.String({
      minLength: 1,
      maxLength: 200,
      description: `what the ZIP holds, a comma list of ${EXPORT_FORMATS.join(', ')} (default: all): folders are the run folders under runs/<run_id>/, ${Object.entries(EXPORT_FILES).map(([format, file]) => `${format} is ${file}`).join(', ')}; html brings the folders with it. An unknown name is refused with 400 INVALID_EXPORT_FORMAT.`,
      examples: ['csv,xlsx', 'folders,html']
    }))
  })
])
export type ExportQuery = Static<typeof ExportQuery>

/** The 200 of GET /api/exports. */
export const ExportZipResponse = { description: 'a ZIP, streamed: runs/<run_id>/… for each run, runs.csv, runs.xlsx, index.html, report.pdf', content: { 'application/zip': BINARY } }
