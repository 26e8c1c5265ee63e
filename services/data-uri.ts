import { InvalidDataError } from './errors.js'

export interface DecodedData {
  bytes: Buffer
  /** the MIME type the data URI claims; often wrong, so only ever recorded, never trusted */
  declared_mime_type: string | null
}

const MIME_PATTERN = /^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/
const STANDARD_BASE64 = /^[A-Za-z0-9+/]*$/
const URL_SAFE_BASE64 = /^[A-Za-z0-9_-]*$/

/**
 * Decodes `data:[<mime>][;params][;base64],<data>` or bare base64 (standard or
 * url-safe alphabet). Encoders wrap long base64 lines, so whitespace inside the
 * base64 is dropped; anything else that is not base64 is rejected instead of
 * being skipped, because Buffer.from would silently turn garbage into bytes.
 */
export function decodeDataUriOrBase64 (input: string): DecodedData {
  const text = input.trim()
  if (text === '') throw new InvalidDataError('empty data')
  if (/^data:/i.test(text)) return decodeDataUri(text)
  return { bytes: decodeStrictBase64(text), declared_mime_type: null }
}

function decodeDataUri (text: string): DecodedData {
  const comma = text.indexOf(',')
  if (comma === -1) throw new InvalidDataError('a data URI needs a comma before its data')
  const header = text.slice('data:'.length, comma).split(';').map((part) => part.trim())
  const data = text.slice(comma + 1)
  const isBase64 = header.length > 1 && header[header.length - 1]?.toLowerCase() === 'base64'
  const mime = header[0]?.toLowerCase() ?? ''
  const declared = MIME_PATTERN.test(mime) ? mime : null
  if (isBase64) {
    // Some encoders percent-encode '+', '/' and '=' inside the URI.
    const unescaped = data.includes('%') ? percentDecode(data).toString('latin1') : data
    return { bytes: decodeStrictBase64(unescaped), declared_mime_type: declared }
  }
  const bytes = percentDecode(data)
  if (bytes.length === 0) throw new InvalidDataError('the data URI holds no data')
  return { bytes, declared_mime_type: declared }
}

function decodeStrictBase64 (encoded: string): Buffer {
  const compact = encoded.replace(/\s+/g, '')
  if (compact === '') throw new InvalidDataError('empty base64')
  const padding = /=*$/.exec(compact)?.[0].length ?? 0
  const body = compact.slice(0, compact.length - padding)
  if (!STANDARD_BASE64.test(body) && !URL_SAFE_BASE64.test(body)) {
    throw new InvalidDataError('not base64: unexpected characters')
  }
  if (padding > 2 || (padding > 0 && compact.length % 4 !== 0)) {
    throw new InvalidDataError('not base64: wrong padding')
  }
  // One leftover character cannot hold a whole byte: the data was cut off.
  if (body.length % 4 === 1) throw new InvalidDataError('not base64: truncated')
  const standard = body.replace(/-/g, '+').replace(/_/g, '/')
  const bytes = Buffer.from(standard, 'base64')
  if (bytes.length === 0) throw new InvalidDataError('empty base64')
  return bytes
}

function percentDecode (text: string): Buffer {
  const parts: Buffer[] = []
  let plain = ''
  for (let i = 0; i < text.length; i++) {
    const char = text[i]
    if (char !== '%') {
      plain += char
      continue
    }
    const hex = text.slice(i + 1, i + 3)
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw new InvalidDataError(`broken percent-encoding at position ${i}`)
    if (plain !== '') {
      parts.push(Buffer.from(plain, 'utf8'))
      plain = ''
    }
    parts.push(Buffer.from([Number.parseInt(hex, 16)]))
    i += 2
  }
  if (plain !== '') parts.push(Buffer.from(plain, 'utf8'))
  return Buffer.concat(parts)
}
