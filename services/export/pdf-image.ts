import { crc32, deflateSync } from 'node:zlib'
import { PNG } from 'pngjs'

/**
 * A PNG as a PDF image that pdfkit places like one of its own (it takes any
 * object with width, height, label, obj and embed). pdfkit's PNG reader
 * copies the pixel data byte by byte into an array (about 0.4 s and a
 * hundred MiB of garbage for one 1024² picture) and decodes some pictures in
 * a callback whose errors no one can catch. Here the common PNG (gray, RGB or
 * palette, 8 bits, not interlaced, no transparency) keeps its compressed
 * data as it is, PDF's Flate predictors read it directly; any other is
 * decoded once (pngjs) into RGB and an alpha mask. Every chunk's CRC is
 * checked first: a damaged file is refused here, where a caller can catch it.
 */
export class PdfPng {
  readonly width: number
  readonly height: number
  readonly label: string
  obj: PDFKit.PDFKitReference | undefined
  readonly #embed: (doc: PDFKit.PDFDocument) => PDFKit.PDFKitReference

  constructor (bytes: Buffer, label: string) {
    const png = readChunks(bytes)
    this.width = png.width
    this.height = png.height
    this.label = label
    this.#embed = png.interlace === 0 && png.bitDepth === 8 && png.transparency === null && [0, 2, 3].includes(png.colorType)
      ? (doc) => embedCompressed(doc, png)
      : embedDecoded(bytes)
  }

  embed (doc: PDFKit.PDFDocument): void {
    this.obj = this.#embed(doc)
  }
}

interface PngChunks {
  width: number
  height: number
  bitDepth: number
  colorType: number
  interlace: number
  palette: Buffer | null
  transparency: Buffer | null
  /** the IDAT chunks' data, joined: one zlib stream */
  data: Buffer
}

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

function readChunks (bytes: Buffer): PngChunks {
  if (!bytes.subarray(0, 8).equals(SIGNATURE)) throw new Error('not a PNG')
  let header: Buffer | null = null
  let palette: Buffer | null = null
  let transparency: Buffer | null = null
  const data: Buffer[] = []
  for (let at = 8; ;) {
    if (at + 12 > bytes.length) throw new Error('PNG ends before its IEND chunk')
    const length = bytes.readUInt32BE(at)
    const end = at + 12 + length
    if (end > bytes.length) throw new Error('PNG chunk runs past the end of the file')
    if (crc32(bytes.subarray(at + 4, end - 4)) !== bytes.readUInt32BE(end - 4)) throw new Error('PNG chunk with a wrong CRC')
    const type = bytes.toString('latin1', at + 4, at + 8)
    const body = bytes.subarray(at + 8, end - 4)
    if (type === 'IHDR') header = body
    else if (type === 'PLTE') palette = body
    else if (type === 'tRNS') transparency = body
    else if (type === 'IDAT') data.push(body)
    else if (type === 'IEND') break
    at = end
  }
  if (header === null || header.length < 13 || data.length === 0) throw new Error('PNG without IHDR or IDAT')
  return {
    width: header.readUInt32BE(0),
    height: header.readUInt32BE(4),
    bitDepth: header[8]!,
    colorType: header[9]!,
    interlace: header[12]!,
    palette,
    transparency,
    data: Buffer.concat(data)
  }
}

function embedCompressed (doc: PDFKit.PDFDocument, png: PngChunks): PDFKit.PDFKitReference {
  const colors = png.colorType === 2 ? 3 : 1
  let colorSpace: unknown = png.colorType === 2 ? 'DeviceRGB' : 'DeviceGray'
  if (png.colorType === 3) {
    if (png.palette === null) throw new Error('palette PNG without a palette')
    const palette = doc.ref({})
    palette.end(png.palette)
    colorSpace = ['Indexed', 'DeviceRGB', png.palette.length / 3 - 1, palette]
  }
  const image = doc.ref({
    Type: 'XObject',
    Subtype: 'Image',
    Width: png.width,
    Height: png.height,
    BitsPerComponent: 8,
    ColorSpace: colorSpace,
    Filter: 'FlateDecode',
    DecodeParms: { Predictor: 15, Colors: colors, BitsPerComponent: 8, Columns: png.width }
  })
  image.end(png.data)
  return image
}

function embedDecoded (bytes: Buffer): (doc: PDFKit.PDFDocument) => PDFKit.PDFKitReference {
  // decoded now, so that damage is found while the caller can still draw a placeholder
  const { width, height, data } = PNG.sync.read(bytes)
  const pixels = width * height
  const rgb = Buffer.allocUnsafe(pixels * 3)
  const alpha = Buffer.allocUnsafe(pixels)
  let opaque = true
  for (let i = 0; i < pixels; i++) {
    rgb[3 * i] = data[4 * i]!
    rgb[3 * i + 1] = data[4 * i + 1]!
    rgb[3 * i + 2] = data[4 * i + 2]!
    alpha[i] = data[4 * i + 3]!
    if (alpha[i] !== 255) opaque = false
  }
  const plane = (colorSpace: string): Record<string, unknown> => ({ Type: 'XObject', Subtype: 'Image', Width: width, Height: height, BitsPerComponent: 8, ColorSpace: colorSpace, Filter: 'FlateDecode' })
  return (doc) => {
    let mask: PDFKit.PDFKitReference | null = null
    if (!opaque) {
      mask = doc.ref(plane('DeviceGray'))
      mask.end(deflateSync(alpha, { level: 1 }))
    }
    const image = doc.ref({ ...plane('DeviceRGB'), ...(mask !== null ? { SMask: mask } : {}) })
    image.end(deflateSync(rgb, { level: 1 }))
    return image
  }
}
