import { Readable, pipeline } from 'node:stream'
import { stringify } from 'csv-stringify'
import type { Column, Row } from './runs-table.js'

/**
 * runs.csv: RFC 4180 (CRLF, quotes where needed, texts with line breaks
 * kept whole), UTF-8 with a byte order mark so that Excel reads umlauts as
 * UTF-8 too. Rows are written as they come, at the pace the reader takes them.
 */
export function csvTable (rows: AsyncIterable<Row>, columns: readonly Column[]): Readable {
  const csv = stringify({ header: true, bom: true, record_delimiter: 'windows', escape_formulas: true, columns: columns.map((c) => c.key) })
  // pipeline destroys the CSV stream with any error of the rows, so the reader sees it.
  pipeline(Readable.from(rows), csv, () => {})
  return csv
}
