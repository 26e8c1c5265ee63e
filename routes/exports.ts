import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses } from '../schemas/common.js'
import { ExportQuery, ExportZipResponse } from '../schemas/exports-api.js'
import { exportRequestOf } from '../services/export/export-query.js'

const exportRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/api/exports', {
    // Before validation: who may not export learns nothing about the query.
    onRequest: async (request) => { await app.requireAdmin(request) },
    schema: {
      tags: ['exports'],
      summary: 'the runs the filters select, as one ZIP: their folders, a table (CSV and XLSX), an offline gallery and a PDF report (admin)',
      description: 'The filters are those of GET /api/runs, without paging. The ZIP is streamed as it is made: runs/<run_id>/ holds each run\'s files as stored (byte for byte, as its metadata lists them); runs.csv (UTF-8 with a byte order mark) and runs.xlsx have one row per output (one for a run without outputs) with the run\'s fields, every stage\'s text and decision, the output\'s facts and its path in the ZIP; index.html is a gallery that works opened from the unpacked folder, filterable by user and pipeline; report.pdf has one page per run. A failure while streaming (a file that cannot be read) breaks the transfer off instead of ending the ZIP, so a download that completes is whole.',
      querystring: ExportQuery,
      security: [{ adminToken: [] }],
      response: { 200: ExportZipResponse, ...errorResponses(400, 401, 403) }
    }
  }, async (request, reply) => {
    const { filename, stream } = await app.exporter.export(exportRequestOf(request.query))
    return await reply
      .type('application/zip')
      .header('Content-Disposition', `attachment; filename="${filename}"`)
      .header('Cache-Control', 'no-store')
      .send(stream)
  })
}

export default exportRoutes
