import t from 'tap'
import { readFile } from 'node:fs/promises'
import PDFDocument from 'pdfkit'
import { PNG, type PNGOptions } from 'pngjs'
import { PdfPng } from '../../../services/export/pdf-image.js'
import { pdfPictures } from '../../export-readers.js'
import { fixtures } from '../../fixtures/media.js'
import { pngFile } from '../../forged-png.js'

/** A 5×3 picture that varies in every channel, alpha too when asked. */
function varied (options: PNGOptions & { alpha?: boolean }): Buffer {
  const png = new PNG({ width: 5, height: 3 })
  for (let i = 0; i < 15; i++) png.data.set([i * 17, 255 - i * 13, (i * 50) % 256, options.alpha === true ? i * 18 : 255], i * 4)
  return PNG.sync.write(png, options)
}

const palette = Buffer.from([255, 0, 0, 0, 255, 0, 0, 0, 255, 250, 250, 250])
const indexed = (chunks: Array<[string, Buffer]>): Buffer =>
  pngFile({ width: 4, height: 2, bitDepth: 8, colorType: 3, chunks, row: (y) => Buffer.from(y === 0 ? [0, 1, 2, 3] : [3, 2, 1, 0]) })

const kinds: Record<string, Buffer> = {
  'RGB (the fixture)': await readFile(fixtures.png.file),
  'RGBA, partly transparent': varied({ colorType: 6, alpha: true }),
  'RGBA, opaque': varied({ colorType: 6 }),
  'gray': varied({ colorType: 0 }),
  'gray with alpha': varied({ colorType: 4, alpha: true }),
  'RGB, 16 bits': varied({ colorType: 2, bitDepth: 16 }),
  'palette': indexed([['PLTE', palette]]),
  'palette with transparency': indexed([['PLTE', palette], ['tRNS', Buffer.from([255, 128, 0])]])
}

t.test('every kind of PNG shows in the PDF with the pixels it has', async (t) => {
  const doc = new PDFDocument({ autoFirstPage: false })
  const chunks: Buffer[] = []
  doc.on('data', (chunk: Buffer) => chunks.push(chunk))
  const ended = new Promise((resolve) => doc.on('end', resolve))
  for (const [i, bytes] of Object.values(kinds).entries()) {
    doc.addPage()
    doc.image(new PdfPng(bytes, `R${i}`) as unknown as Buffer, 40, 40, { fit: [300, 300] })
  }
  doc.end()
  await ended
  const pictures = await pdfPictures(Buffer.concat(chunks))
  t.equal(pictures.length, Object.keys(kinds).length)
  for (const [i, [kind, bytes]] of Object.entries(kinds).entries()) {
    const expected = PNG.sync.read(bytes)
    const shown = pictures.find((p) => p.page === i + 1)!
    t.match(shown, { width: expected.width, height: expected.height }, kind)
    t.same(shown.rgba, expected.data, `${kind}: the same pixels`)
  }
})

t.test('a damaged PNG is refused when it is read, not when the PDF is written', async (t) => {
  const good = await readFile(fixtures.png.file)
  const flipped = Buffer.from(good)
  flipped[flipped.length - 20]! ^= 0xff
  t.throws(() => new PdfPng(flipped, 'R1'), /CRC/)
  t.throws(() => new PdfPng(good.subarray(0, good.length - 12), 'R1'), /ends before its IEND/)
  t.throws(() => new PdfPng(good.subarray(0, 200), 'R1'), /past the end/)
  const jpeg = await readFile(fixtures.jpeg.file)
  t.throws(() => new PdfPng(jpeg, 'R1'), /not a PNG/)
  t.throws(() => new PdfPng(pngFile({ width: 2, height: 1, bitDepth: 8, colorType: 3, row: () => Buffer.from([0, 0]) }), 'R1').embed(new PDFDocument()), /without a palette/)
})
