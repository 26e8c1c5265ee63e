import t, { type Test } from 'tap'
import { decodeDataUriOrBase64 } from '../../services/data-uri.js'
import { InvalidDataError } from '../../services/errors.js'
import { makePng } from '../fakes/openai.js'

const png = makePng(12, 9, [10, 20, 30])
const base64 = png.toString('base64')

function rejects (t: Test, input: string, message: RegExp): void {
  const label = JSON.stringify(input.slice(0, 40))
  try {
    decodeDataUriOrBase64(input)
    t.fail(`${label} was accepted`)
  } catch (err) {
    t.ok(err instanceof InvalidDataError, `${label} → InvalidDataError`)
    t.match(err, { code: 'INVALID_DATA', statusCode: 400, message }, `${label} → ${String(message)}`)
  }
}

t.test('a base64 data URI gives the bytes and the declared type', async (t) => {
  const result = decodeDataUriOrBase64(`data:image/png;base64,${base64}`)
  t.ok(result.bytes.equals(png))
  t.equal(result.declared_mime_type, 'image/png')
})

t.test('newlines and spaces anywhere in the base64 are dropped', async (t) => {
  const wrapped = base64.replace(/(.{60})/g, '$1\r\n').replace(/(.{7})/, '$1 \t')
  const result = decodeDataUriOrBase64(`data:image/png;base64,\n${wrapped}\n`)
  t.ok(result.bytes.equals(png))
})

t.test('the declared type is recorded lowercased, parameters dropped, and never checked against the bytes', async (t) => {
  const result = decodeDataUriOrBase64(`DATA:Image/JPEG;name=x.jpg;charset=utf-8;BASE64,${base64}`)
  t.ok(result.bytes.equals(png))
  t.equal(result.declared_mime_type, 'image/jpeg')
})

t.test('a data URI without a type or with a malformed one declares nothing', async (t) => {
  t.equal(decodeDataUriOrBase64(`data:;base64,${base64}`).declared_mime_type, null)
  t.equal(decodeDataUriOrBase64(`data:png;base64,${base64}`).declared_mime_type, null)
})

t.test('percent-encoded base64 in a data URI', async (t) => {
  const escaped = base64.replace(/\+/g, '%2B').replace(/\//g, '%2F').replace(/=/g, '%3D')
  t.ok(escaped.includes('%'))
  t.ok(decodeDataUriOrBase64(`data:image/png;base64,${escaped}`).bytes.equals(png))
})

t.test('a data URI that is not base64 is percent-decoded into bytes', async (t) => {
  const text = decodeDataUriOrBase64('data:,Hello%2C%20World!')
  t.equal(text.bytes.toString('utf8'), 'Hello, World!')
  t.equal(text.declared_mime_type, null)
  const svg = decodeDataUriOrBase64('data:image/svg+xml;charset=utf-8,%3Csvg xmlns%3D%22http://www.w3.org/2000/svg%22%3E%3C/svg%3E')
  t.equal(svg.bytes.toString('utf8'), '<svg xmlns="http://www.w3.org/2000/svg"></svg>')
  t.equal(svg.declared_mime_type, 'image/svg+xml')
  t.same([...decodeDataUriOrBase64('data:application/octet-stream,%FF%00%d8').bytes], [0xff, 0x00, 0xd8])
  t.equal(decodeDataUriOrBase64('data:text/plain,grüße').bytes.toString('utf8'), 'grüße')
})

t.test('bare base64, standard and url-safe, padded or not', async (t) => {
  t.ok(decodeDataUriOrBase64(base64).bytes.equals(png))
  t.ok(decodeDataUriOrBase64(`  ${base64}\n`).bytes.equals(png))
  const bytes = Buffer.from([0xfb, 0xff, 0xbf, 0xfe, 0x10])
  t.equal(bytes.toString('base64'), '+/+//hA=')
  t.ok(decodeDataUriOrBase64('-_-__hA=').bytes.equals(bytes))
  t.ok(decodeDataUriOrBase64('-_-__hA').bytes.equals(bytes))
  t.ok(decodeDataUriOrBase64('+/+//hA').bytes.equals(bytes))
})

t.test('rejects empty input', async (t) => {
  rejects(t, '', /empty/)
  rejects(t, ' \n\t ', /empty/)
  rejects(t, 'data:image/png;base64,', /empty base64/)
  rejects(t, 'data:image/png;base64, \r\n', /empty base64/)
  rejects(t, 'data:text/plain,', /no data/)
})

t.test('rejects garbage instead of decoding part of it', async (t) => {
  rejects(t, 'hello world!', /unexpected characters/)
  rejects(t, 'https://example.com/picture.png', /unexpected characters/)
  rejects(t, `data:image/png;base64,${base64.slice(0, 20)}*${base64.slice(20)}`, /unexpected characters/)
  rejects(t, 'data:image/png;base64,this is *not* base64', /unexpected characters/)
  rejects(t, 'QQ==QQ==', /unexpected characters/)
  rejects(t, 'ab+_', /unexpected characters/)
})

t.test('rejects wrong padding and cut-off base64', async (t) => {
  rejects(t, 'QQ=', /padding/)
  rejects(t, 'QQ===', /padding/)
  rejects(t, 'Q===', /padding/)
  rejects(t, 'QUJDR', /truncated/)
})

t.test('rejects a data URI without a comma', async (t) => {
  rejects(t, `data:image/png;base64${base64}`, /comma/)
  rejects(t, 'data:', /comma/)
})

t.test('rejects broken percent-encoding', async (t) => {
  rejects(t, 'data:text/plain,100%', /percent-encoding/)
  rejects(t, 'data:text/plain,%zz', /percent-encoding/)
  rejects(t, 'data:image/png;base64,QQ%3', /percent-encoding/)
})
