// exceljs's streaming writer alone: its main module also loads the xlsx reader
// (unzipper and some eighty packages behind it), which runstore never uses.
declare module 'exceljs/lib/stream/xlsx/workbook-writer.js' {
  import type { stream } from 'exceljs'
  const WorkbookWriter: typeof stream.xlsx.WorkbookWriter
  export default WorkbookWriter
}
