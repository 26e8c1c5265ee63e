import { PassThrough, type Readable } from 'node:stream'
import PDFDocument from 'pdfkit'
import type { MediaOutput, RunMetadata } from '../../schemas/run.js'
import type { RunStorage } from '../storage/run-storage.js'
import { drained } from './drain.js'
import { PdfPng } from './pdf-image.js'
import { archivePath, formatTime, outputFacts, stageSummaries } from './runs-table.js'

export interface PdfOptions {
  title: string
  subtitle: string
  created: Date
}

// A4 in points, and the frame every page is drawn in.
const MARGIN = 40
const PAGE = { width: 595.28, height: 841.89 }
const WIDTH = PAGE.width - 2 * MARGIN
const BOTTOM = PAGE.height - MARGIN
const PICTURE_HEIGHT = 330
// Larger pictures are not decoded into a page: a placeholder with their facts stands instead.
const MAX_PICTURE_BYTES = 32 * 1024 * 1024
const MAX_PICTURE_PIXELS = 40_000_000
const EMBEDDABLE = new Set(['png', 'jpg'])

/**
 * report.pdf: one A4 page per run, with its first PNG or JPEG picture
 * scaled to fit (a box with the facts for other formats, sound and video),
 * the texts and each output's facts, every text cut to the room its page
 * has. Written page by page as the runs are read; a picture is read only
 * for its page. A file that cannot be read fails the report.
 */
export function pdfReport (runs: AsyncIterable<RunMetadata>, storage: RunStorage, options: PdfOptions): Readable {
  const doc = new PDFDocument({
    size: 'A4',
    margin: MARGIN,
    autoFirstPage: false,
    info: { Title: pdfText(options.title), Subject: pdfText(options.subtitle), Creator: 'runstore', CreationDate: options.created }
  })
  const output = new PassThrough()
  doc.on('data', (chunk: Buffer) => { output.write(chunk) })
  doc.on('end', () => { output.end() })
  void (async () => {
    let pages = 0
    for await (const metadata of runs) {
      await drained(output)
      const picture = await pagePicture(storage, metadata, `R${pages + 1}`)
      runPage(doc, metadata, picture)
      pages++
    }
    if (pages === 0) {
      doc.addPage()
      doc.font('Helvetica').fontSize(12).text('No runs match the filters.')
    }
    doc.end()
  })().catch((err: unknown) => { output.destroy(err instanceof Error ? err : new Error(String(err))) })
  return output
}

/** A JPEG goes to pdfkit as it is; a PNG is prepared here (pdf-image.ts). */
type Picture = { output: MediaOutput, image: Buffer | PdfPng } | { output: MediaOutput | null, note: string }

/** The picture of a run's page, or why there is none; `label` names it inside the PDF. */
async function pagePicture (storage: RunStorage, metadata: RunMetadata, label: string): Promise<Picture> {
  const output = metadata.outputs.find((o) => o.type === 'image' && EMBEDDABLE.has(o.format))
  if (output === undefined) {
    const first = metadata.outputs[0] ?? null
    return { output: first, note: first === null ? 'no media' : `${first.type}: not shown in a PDF` }
  }
  if (output.file_size_bytes > MAX_PICTURE_BYTES || (output.width ?? 0) * (output.height ?? 0) > MAX_PICTURE_PIXELS) {
    return { output, note: 'too large to show here' }
  }
  const bytes = await storage.readFile(await storage.resolveFile(metadata.run_id, output.filename))
  if (output.format !== 'png') return { output, image: bytes }
  try {
    return { output, image: new PdfPng(bytes, label) }
  } catch {
    return { output, note: 'the picture cannot be decoded' }
  }
}

function runPage (doc: PDFKit.PDFDocument, metadata: RunMetadata, picture: Picture): void {
  doc.addPage()
  line(doc, `${formatTime(metadata.timestamp)} · ${metadata.user_id ?? '(no user)'} · ${metadata.schema}`, 'Helvetica-Bold', 13)
  line(doc, `run ${metadata.run_id} · ${metadata.status} · ${metadata.execution_mode} · safety ${metadata.safety_level ?? '–'}`, 'Helvetica', 8, '#555555')
  const top = doc.y + 6
  drawPicture(doc, metadata, picture, top)
  doc.y = top + PICTURE_HEIGHT + 10

  block(doc, 'Input', metadata.input_text, 90)
  if (metadata.transformed_text !== null) block(doc, 'Transformed', metadata.transformed_text, 110)
  for (const stage of stageSummaries(metadata)) {
    block(doc, stage.stage, [stage.text, stage.decision].filter((s) => s !== '').join('\n'), 40, 8)
  }
  if (metadata.errors.length > 0) block(doc, 'Errors', metadata.errors.map((e) => `${e.code}: ${e.message}`).join('\n'), 40, 8)
  if (metadata.outputs.length > 0) {
    block(doc, 'Media', metadata.outputs.map((o) => `${outputFacts(metadata, o)}\n${archivePath(metadata.run_id, o.filename)}  sha256 ${o.sha256}`).join('\n'), 200, 7)
  }
}

function drawPicture (doc: PDFKit.PDFDocument, metadata: RunMetadata, picture: Picture, top: number): void {
  if ('image' in picture) {
    try {
      doc.image(picture.image as PDFKit.Mixins.ImageSrc, MARGIN, top, { fit: [WIDTH, PICTURE_HEIGHT], align: 'center', valign: 'center' })
      return
    } catch {
      // a JPEG pdfkit cannot read: the placeholder says so
      picture = { output: picture.output, note: 'the picture cannot be decoded' }
    }
  }
  doc.save().rect(MARGIN, top, WIDTH, PICTURE_HEIGHT).fillAndStroke('#f0f0f0', '#bbbbbb').restore()
  const facts = picture.output === null ? [] : [outputFacts(metadata, picture.output), archivePath(metadata.run_id, picture.output.filename)]
  doc.font('Helvetica').fontSize(11).fillColor('#444444')
    .text(pdfText([picture.note, ...facts].join('\n')), MARGIN + 20, top + PICTURE_HEIGHT / 2 - 30, { width: WIDTH - 40, height: PICTURE_HEIGHT / 2, align: 'center', ellipsis: true })
  doc.fillColor('black')
}

/** One line, cut to the page's width. */
function line (doc: PDFKit.PDFDocument, text: string, font: string, size: number, color = 'black'): void {
  doc.font(font).fontSize(size).fillColor(color)
  doc.text(pdfText(text), MARGIN, doc.y, { width: WIDTH, height: size * 1.3, ellipsis: true })
  doc.fillColor('black')
}

/** A labelled text, cut (…) to at most maxHeight and to what is left of the page, so a run never takes two pages. */
function block (doc: PDFKit.PDFDocument, label: string, text: string, maxHeight: number, size = 10): void {
  if (BOTTOM - doc.y < 2 * (size + 4)) return
  doc.font('Helvetica-Bold').fontSize(8).fillColor('#555555').text(pdfText(label), MARGIN, doc.y + 4, { width: WIDTH, height: 12, ellipsis: true })
  doc.font('Helvetica').fontSize(size).fillColor('black')
  const room = Math.min(maxHeight, BOTTOM - doc.y)
  if (text !== '' && room >= size * 1.2) doc.text(pdfText(text), MARGIN, doc.y, { width: WIDTH, height: room, ellipsis: true })
}

// The characters of WinAnsiEncoding beyond Latin-1, which the standard fonts draw.
const WIN_ANSI_EXTRA = new Set('€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ')

/**
 * The text as the standard fonts can draw it (WinAnsi: German umlauts and ß
 * included): composed characters first (u + ¨ → ü), line breaks kept,
 * other control characters dropped, anything else the font lacks shown as ?.
 */
export function pdfText (text: string): string {
  let drawable = ''
  for (const char of text.normalize('NFC').replace(/\r\n?/g, '\n')) {
    const code = char.codePointAt(0)!
    if (char === '\n' || (code >= 0x20 && code <= 0x7e) || (code >= 0xa0 && code <= 0xff) || WIN_ANSI_EXTRA.has(char)) drawable += char
    else if (char === '\t') drawable += ' '
    else if (code > 0x9f) drawable += '?'
  }
  return drawable
}
