import { parse } from 'csv-parse/sync'
import ExcelJS from 'exceljs'
import { getDocument, OPS } from 'pdfjs-dist/legacy/build/pdf.mjs'

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

/** The pictures a PDF's pages paint, as pdf.js decodes them: RGBA pixels, the page number with each. */
export async function pdfPictures (pdf: Buffer): Promise<Array<{ page: number, width: number, height: number, rgba: Buffer }>> {
  const document = await getDocument({ data: new Uint8Array(pdf), verbosity: 0, isEvalSupported: false }).promise
  const pictures: Array<{ page: number, width: number, height: number, rgba: Buffer }> = []
  for (let number = 1; number <= document.numPages; number++) {
    const page = await document.getPage(number)
    const operators = await page.getOperatorList()
    for (const [i, operator] of operators.fnArray.entries()) {
      if (operator !== OPS.paintImageXObject) continue
      const image = await new Promise<{ width: number, height: number, kind: number, data: Uint8ClampedArray }>((resolve) => { page.objs.get(operators.argsArray[i][0], resolve) })
      // pdf.js gives RGB (kind 2) or RGBA (kind 3)
      const channels = image.kind === 3 ? 4 : 3
      const rgba = Buffer.alloc(image.width * image.height * 4, 255)
      for (let p = 0; p < image.width * image.height; p++) {
        for (let c = 0; c < channels; c++) rgba[4 * p + c] = image.data[channels * p + c]!
      }
      pictures.push({ page: number, width: image.width, height: image.height, rgba })
    }
  }
  await document.destroy()
  return pictures
}
