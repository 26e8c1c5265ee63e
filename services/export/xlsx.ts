import { PassThrough, type Readable } from 'node:stream'
// The writer alone: the package's main module loads the xlsx reader too (see exceljs-writer.d.ts).
import WorkbookWriter from 'exceljs/lib/stream/xlsx/workbook-writer.js'
import { drained } from './drain.js'
import type { Column, Row } from './runs-table.js'

// The most characters a spreadsheet cell holds; Excel calls a file with a longer one broken.
const MAX_CELL_CHARS = 32767
const TRUNCATED = ' […]'

/**
 * runs.xlsx, written by exceljs's streaming writer: one sheet "runs" with a
 * frozen header row, rows committed as they come. The writer does not wait
 * for its reader, so the rows wait whenever the output is full.
 */
export function xlsxTable (rows: AsyncIterable<Row>, columns: readonly Column[], created: Date): Readable {
  const output = new PassThrough()
  const workbook = new WorkbookWriter({ stream: output, useStyles: true, useSharedStrings: false })
  Object.assign(workbook, { created, modified: created, creator: 'runstore', lastModifiedBy: 'runstore' })
  void (async () => {
    const sheet = workbook.addWorksheet('runs', { views: [{ state: 'frozen', ySplit: 1 }] })
    sheet.columns = columns.map((c) => ({ header: c.key, key: c.key, width: c.width }))
    sheet.getRow(1).font = { bold: true }
    sheet.getRow(1).commit()
    for await (const row of rows) {
      sheet.addRow(cells(row)).commit()
      await drained(output)
    }
    sheet.commit()
    await workbook.commit()
  })().catch((err: unknown) => { output.destroy(err instanceof Error ? err : new Error(String(err))) })
  return output
}

function cells (row: Row): Row {
  const fitted: Row = {}
  for (const [key, value] of Object.entries(row)) {
    fitted[key] = typeof value === 'string' && value.length > MAX_CELL_CHARS ? value.slice(0, MAX_CELL_CHARS - TRUNCATED.length) + TRUNCATED : value
  }
  return fitted
}
