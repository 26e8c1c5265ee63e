import t, { type Test } from 'tap'
import { build } from '../helper.js'

// GET /api/runs takes text from anyone. Generated filters, built from the
// pieces that break full-text queries and parsers (NUL and other control
// characters, quotes, FTS5 operators and column filters, lone surrogates,
// broken percent escapes, overlong values), must get 200 with exactly the
// runs that match or a 4xx in the contract's shape: never a 500.

type App = Awaited<ReturnType<typeof build>>

const PIECES = [
  '\0', '\u0001', '\u001f', '\t', '\n', '\r', '\u007f', '"', '""', "'", '*', '^', ':', '(', ')', '{', '}', '[', ']',
  '-', '+', ',', '.', ';', '--', '/*', '\\', '%', '_', 'AND', 'OR', 'NOT', 'NEAR', 'NEAR(', 'NEAR/2', 'input_text:',
  'transformed_text:', '{input_text transformed_text}:', ' ', 'a', 'b', 'blume', 'Blume', 'Ä', 'ß', 'İ', 'e\u0301', '😀',
  '\ud800', '\udc00', '\ufffd', '\u200f', '\u2028', '\ufeff', 'x'.repeat(50), 'SELECT', "' OR 1=1 --"
]

// Texts that hold the same pieces, so that generated needles also find something.
const TEXTS = [
  ['Eine Blume auf der Wiese', 'A flower "in" a meadow'],
  ['ab\0cd NUL\0\0\0 inside', 'NEAR(ab cd) AND NOT x*'],
  ['quotes "" \' and ^:(){}', null],
  ['input_text: transformed_text: {input_text}:', 'column filters'],
  ['Äpfel, Straße, İstanbul, café', 'UPPER and lower ÄÖÜ'],
  ['emoji 😀😀 and \u200fRTL\u200f and \ufeffBOM', 'line\nbreak\ttab\r'],
  ['control \u0001\u001f\u007f chars', 'x'.repeat(120)],
  ['lone \ud800 surrogate \udc00 here', "' OR 1=1 -- SELECT * FROM runs"],
  ['%_\\ like wildcards %%', '/* comment */ -- dash']
] as const

/** mulberry32: a small seeded generator, so a failure names the case that reproduces it */
function random (seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let x = Math.imul(state ^ (state >>> 15), 1 | state)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

const fold = (text: string): string => text.normalize('NFC').toLowerCase()
// for test names: JSON leaves U+2028 and U+2029 as they are, and TAP would read them as line ends
const show = (text: string): string => JSON.stringify(text).replace(/[\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`)
// a lone surrogate (\p{Cs} under the u flag matches no half of a pair)
const wellFormed = (text: string): boolean => !/\p{Cs}/u.test(text)

/** Percent-encodes every UTF-16 unit: a lone surrogate as its WTF-8 bytes, which are not UTF-8. */
function encode (text: string): string {
  if (wellFormed(text)) return encodeURIComponent(text)
  return Array.from(text, (c) => wellFormed(c)
    ? encodeURIComponent(c)
    : Array.from([0xe0 | (c.charCodeAt(0) >> 12), 0x80 | ((c.charCodeAt(0) >> 6) & 0x3f), 0x80 | (c.charCodeAt(0) & 0x3f)], (b) => `%${b.toString(16).toUpperCase()}`).join('')
  ).join('')
}

async function expectContractShape (t: Test, app: App, query: string): Promise<{ statusCode: number, body: any }> {
  const res = await app.inject({ url: `/api/runs?${query}` })
  const label = query.slice(0, 120)
  if (res.statusCode >= 500) t.fail(`${label}: ${res.statusCode} ${res.body.slice(0, 200)}`)
  t.match(res.headers['content-type'], /^application\/json/, label)
  const body = res.json()
  if (res.statusCode === 200) {
    t.ok(Array.isArray(body.runs) && (body.next_cursor === null || typeof body.next_cursor === 'string'), `${label}: a listing`)
  } else {
    t.ok(res.statusCode >= 400 && res.statusCode < 500, `${label}: a client error`)
    t.same(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'], `${label}: {statusCode, error, code, message}`)
    t.ok(body.statusCode === res.statusCode && /^[A-Z_]+$/.test(body.code), `${label}: ${body.code}`)
  }
  return { statusCode: res.statusCode, body }
}

t.test('q finds exactly the runs whose texts contain it, whatever it holds', async (t) => {
  const app = await build(t)
  const runs: Array<{ run_id: string, texts: string[] }> = []
  for (const [input, transformed] of TEXTS) {
    const created = await app.inject({ method: 'POST', url: '/api/runs', payload: { schema: 'dada', execution_mode: 'eco', input_text: input } })
    const runId = created.json().run_id as string
    if (transformed !== null) await app.inject({ method: 'PATCH', url: `/api/runs/${runId}`, payload: { transformed_text: transformed } })
    runs.push({ run_id: runId, texts: [input, transformed ?? ''].map(fold) })
  }
  const next = random(9)
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!
  const needles: string[] = ['\0\0\0', 'ab\0cd', '\0', 'NUL\0\0', '"', '""', "'", 'NEAR(ab', 'x*', ':(', '{input_text}:', 'ß']
  for (let i = 0; i < 300; i++) {
    if (i % 2 === 0) {
      const text = Array.from(pick(TEXTS.flat().filter((x) => x !== null)))
      const start = Math.floor(next() * text.length)
      needles.push(text.slice(start, start + 1 + Math.floor(next() * 12)).join(''))
    } else {
      needles.push(Array.from({ length: 1 + Math.floor(next() * 8) }, () => pick(PIECES)).join(''))
    }
  }
  let found = 0
  for (const q of needles) {
    const { statusCode, body } = await expectContractShape(t, app, `q=${encode(q)}&limit=200`)
    if (!wellFormed(q)) continue // its lone surrogates do not survive the URL: the server reads other text
    if (Array.from(q).length > 200) {
      t.equal(statusCode, 400, 'a q longer than 200 characters is refused')
      continue
    }
    const expected = runs.filter((run) => run.texts.some((text) => text.includes(fold(q)))).map((run) => run.run_id).reverse()
    t.same(statusCode === 200 ? body.runs.map((run: any) => run.run_id) : body, expected, `q=${show(q)}`)
    if (expected.length > 0) found++
  }
  t.ok(found > 100, `${found} of the generated needles found runs: the property is not only about empty answers`)
})

t.test('any query string: 200 or a 4xx in the contract\'s shape, never a 500', async (t) => {
  const app = await build(t)
  await app.inject({ method: 'POST', url: '/api/runs', payload: { schema: 'dada', execution_mode: 'eco', input_text: 'Eine Blume \0 auf der Wiese' } })
  const next = random(20)
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!
  const text = (): string => Array.from({ length: 1 + Math.floor(next() * 4) }, () => pick(PIECES)).join('')
  // Values each filter takes, so that most requests get past validation to the index; q and user_id take any text.
  const fitting: Record<string, () => string> = {
    q: text,
    user_id: text,
    schema: () => pick(['dada', 'a.b-c_d', 'x'.repeat(100)]),
    backend: () => pick(['comfyui', 'upload']),
    media_type: () => pick(['image', 'audio', 'video', 'model3d']),
    status: () => pick(['created', 'running', 'completed', 'failed', 'blocked']),
    from: () => pick(['2025-11-04', '2025-11-04T14:00:00+01:00', '1970-01-01T00:00:00Z', '9999-12-31']),
    to: () => pick(['2099-01-01', '2025-11-04T14:00:00.123456Z']),
    limit: () => pick(['1', '50', '200']),
    cursor: () => 'MDE5M2YxZTItN2M0YS03YjllLThkMmYtNGMxYTJiM2M0ZDVl'
  }
  const keys = [...Object.keys(fitting), 'unknown', '__proto__', 'constructor', 'q[]']
  const values = [
    '', '0', '-1', '1.5', '1e2', '0x10', 'NaN', 'Infinity', '9'.repeat(400), '2025-02-30', '2025-11-04T14:00:00',
    '2025-06-30T23:59:60Z', '-271821-04-19', 'x'.repeat(201), ...PIECES
  ]
  // raw pieces of a query string, sent as they are: broken escapes, separators, invalid UTF-8
  const raw = ['%', '%0', '%zz', '%ff', '%c3', '%ED%A0%80', '%00', '&', '=', '==', '+', ';', '[]', '%26q%3D', '\u00e4'.normalize('NFD')]
  const answers = { ok: 0, refused: 0 }
  for (let i = 0; i < 400; i++) {
    const parts = Array.from({ length: 1 + Math.floor(next() * 4) }, () => {
      const key = pick(keys)
      const chance = next()
      const value = chance < 0.7 && Object.hasOwn(fitting, key) ? encode(fitting[key]!()) : chance < 0.85 ? encode(pick(values)) : pick(raw)
      return `${key}=${value}`
    })
    // the full-text search is where a database meets the text: half the requests carry a q
    if (next() < 0.5) parts.push(`q=${encode(text())}`)
    const { statusCode } = await expectContractShape(t, app, parts.join('&'))
    answers[statusCode === 200 ? 'ok' : 'refused']++
  }
  t.ok(answers.ok > 100 && answers.refused > 100, `${answers.ok} listings and ${answers.refused} refusals: both ways are tried`)
})
