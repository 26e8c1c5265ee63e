import sharp, { type Sharp } from 'sharp'
import type { MediaType } from '../../schemas/media.js'

export type ThumbnailFormat = 'webp' | 'jpeg'

/** the media that get a poster instead of a picture of their own */
export type PosterType = Exclude<MediaType, 'image'>

export const THUMBNAIL_MIME_TYPES: Record<ThumbnailFormat, string> = { webp: 'image/webp', jpeg: 'image/jpeg' }

// Thumbnails are looked at, not analysed: a quality that hides its loss at gallery size.
const QUALITY = 80
// JPEG has no transparency: a transparent picture is shown on white, as a page would show it.
const JPEG_BACKGROUND = '#ffffff'

/** sharp refused the input (a format it does not read, damaged data, more pixels than allowed): its words, never a path (the input is a buffer). */
export class RenderError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'RenderError'
  }
}

/**
 * `bytes` (any image sharp reads; of an animation, the first frame) turned
 * upright by its EXIF orientation and scaled to `width`, never up: a
 * narrower picture keeps its own width. Metadata (EXIF, GPS) is left out.
 */
export async function resizeImage (bytes: Buffer, width: number, format: ThumbnailFormat, maxPixels: number): Promise<Buffer> {
  try {
    // failOn 'error': stored files were checked whole at ingest; a decoder's warning is no reason to show nothing.
    const image = sharp(bytes, { limitInputPixels: maxPixels, failOn: 'error', autoOrient: true })
      .resize({ width, withoutEnlargement: true })
    return await encode(image, format)
  } catch (err) {
    throw new RenderError((err as Error).message.split('\n')[0]!.slice(0, 200))
  }
}

/**
 * A neutral picture for a medium that has none of its own (sound, a 3D model,
 * a video when no frame can be taken): a quiet background with a sign of the
 * medium in its middle, drawn from SVG.
 */
export async function renderPoster (type: PosterType, width: number, height: number, format: ThumbnailFormat): Promise<Buffer> {
  return await encode(sharp(Buffer.from(posterSvg(type, width, height))), format)
}

async function encode (image: Sharp, format: ThumbnailFormat): Promise<Buffer> {
  return format === 'webp'
    ? await image.webp({ quality: QUALITY }).toBuffer()
    : await image.flatten({ background: JPEG_BACKGROUND }).jpeg({ quality: QUALITY, progressive: true }).toBuffer()
}

// Each sign on a 100 × 100 grid, in one colour.
const SIGNS: Record<PosterType, string> = {
  // a screen with a play triangle
  video: '<rect x="8" y="20" width="84" height="60" rx="8" fill="none" stroke="currentColor" stroke-width="6"/><path d="M42 36 L64 50 L42 64 Z" fill="currentColor"/>',
  // a sound wave: bars of different heights
  audio: [18, 34, 50, 66, 82].map((x, i) => {
    const h = [24, 52, 76, 44, 28][i]!
    return `<rect x="${x - 4}" y="${50 - h / 2}" width="8" height="${h}" rx="4" fill="currentColor"/>`
  }).join(''),
  // a cube seen from a corner
  model3d: '<path d="M50 12 L84 31 L84 69 L50 88 L16 69 L16 31 Z M16 31 L50 50 L84 31 M50 50 L50 88" fill="none" stroke="currentColor" stroke-width="6" stroke-linejoin="round"/>'
}

export function posterSvg (type: PosterType, width: number, height: number): string {
  const size = Math.min(width, height) * 0.4
  const x = (width - size) / 2
  const y = (height - size) / 2
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">` +
    `<rect width="${width}" height="${height}" fill="#e9e6df"/>` +
    `<g transform="translate(${x} ${y}) scale(${size / 100})" color="#8f8a80">${SIGNS[type]}</g></svg>`
}
