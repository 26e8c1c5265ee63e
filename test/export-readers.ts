import { parse } from 'csv-parse/sync'
import ExcelJS from 'exceljs'
import { getDocument } from 'pdfjs-dist/legacy/build/pdf.mjs'

// The views of an export read back as the programs a researcher uses would read them.

/** runs.csv as records by header, the byte order mark taken off. */
export function csvRows (csv: Buffer): Array<Record<string, string>> {
  return parse(csv, { bom: true, columns: true, skip_empty_lines: true })
}

/** runs.csv as rows of cells, the header first. */
export function csvCells (csv: Buffer): string[][] {
  return parse(csv, { bom: true })
}

/** The first sheet of an XLSX: its name, header and rows, every cell as text. */
export async function xlsxRows (xlsx: Buffer): Promise<{ name: string, header: string[], rows: string[][] }> {
  const workbook = new ExcelJS.Workbook()
  await workbook.xlsx.load(xlsx as unknown as ArrayBuffer)
  const sheet = workbook.worksheets[0]!
  const values: string[][] = []
  sheet.eachRow((row) => {
    const cells: string[] = []
    for (let column = 1; column <= sheet.columnCount; column++) {
      const value = row.getCell(column).value
      cells.push(value === null || value === undefined ? '' : String(value))
    }
    values.push(cells)
  })
  return { name: sheet.name, header: values[0]!, rows: values.slice(1) }
}

/** A PDF as a reader (pdf.js) shows it: the text of each page. */
export async function pdfPages (pdf: Buffer): Promise<string[]> {
  const document = await getDocument({ data: new Uint8Array(pdf), verbosity: 0, isEvalSupported: false }).promise
  const pages: string[] = []
  for (let number = 1; number <= document.numPages; number++) {
    const content = await (await document.getPage(number)).getTextContent()
    pages.push(content.items.map((item) => 'str' in item ? item.str : '').join(' '))
  }
  await document.destroy()
  return pages
}
