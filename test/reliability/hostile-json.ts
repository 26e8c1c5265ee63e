import { Readable } from 'node:stream'
import type { InjectOptions } from 'fastify'
import { jsonOf, type Answer, type HostileCase } from './hostile-case.js'

// Malformed JSON bodies for every route that takes one, and hostile query strings.

export interface JsonContext {
  /** a run PATCH requests go to */
  patchRunId: string
  /** a run media requests go to */
  mediaRunId: string
  /** a small PNG, for the media route's good body */
  image: Buffer
  /** a small output config, so an execute that gets through costs little */
  outputConfig: string
  /** how deep the deeply nested bodies go (the full version goes deeper) */
  depth: number
  /** bytes of the streamed oversize body */
  floodBytes: number
}

interface Target {
  method: 'POST' | 'PATCH'
  url: string
  /** a body the route takes */
  good: Record<string, unknown>
}

function targets (ctx: JsonContext): Record<string, Target> {
  return {
    'POST /api/runs': { method: 'POST', url: '/api/runs', good: { schema: 'dada', execution_mode: 'eco', input_text: 'Eine Blume' } },
    'PATCH /api/runs/:run_id': { method: 'PATCH', url: `/api/runs/${ctx.patchRunId}`, good: { transformed_text: 'A flower' } },
    'POST /api/schema/pipeline/execute': { method: 'POST', url: '/api/schema/pipeline/execute', good: { schema: 'dada', input_text: 'Eine Blume', seed: 1, output_configs: [ctx.outputConfig] } },
    'POST /api/runs/:run_id/media': { method: 'POST', url: `/api/runs/${ctx.mediaRunId}/media`, good: { source: 'data', data: ctx.image.toString('base64'), config: 'upload' } }
  }
}

/** Values of the wrong type for a field; the name says which. */
const WRONG_TYPES: Record<string, unknown> = {
  'a number': 123,
  'a negative number': -1,
  'a huge number': 1e308,
  'a boolean': true,
  null: null,
  'an empty array': [],
  'an array holding a good value': '(good in an array)',
  'an object': {},
  'a query operator': { $gt: '' }
}

/** Fields any text is right for. */
const FREE_TEXT = new Set(['input_text', 'transformed_text'])

const json = (target: Target, payload: string | Buffer | Readable, contentType = 'application/json'): InjectOptions => ({
  method: target.method,
  url: target.url,
  headers: { 'content-type': contentType },
  payload
})

export function jsonCases (ctx: JsonContext): HostileCase[] {
  const cases: HostileCase[] = []
  for (const [route, target] of Object.entries(targets(ctx))) {
    const good = JSON.stringify(target.good)
    const add = (name: string, request: InjectOptions, extra: Partial<HostileCase> = {}): void => {
      cases.push({ name: `${route}: ${name}`, send: { inject: request }, ...extra })
    }
    for (const cut of [1, 2, Math.floor(good.length / 3), Math.floor(good.length / 2), good.length - 1]) {
      add(`JSON cut after ${cut} of ${good.length} characters`, json(target, good.slice(0, cut)))
    }
    for (const field of Object.keys(target.good)) {
      for (const [kind, value] of Object.entries(WRONG_TYPES)) {
        const wrong = value === '(good in an array)' ? [target.good[field]] : value
        if (typeof wrong === typeof target.good[field]) continue
        add(`${field} is ${kind}`, json(target, JSON.stringify({ ...target.good, [field]: wrong })))
      }
      const deep = JSON.stringify({ ...target.good, [field]: 0 }).replace(`"${field}":0`, `"${field}":${'['.repeat(ctx.depth)}${']'.repeat(ctx.depth)}`)
      add(`${field} is nested arrays, deeply`, json(target, deep))
      // A second value wins in JSON.parse; in a free text it would only be text.
      if (!FREE_TEXT.has(field)) add(`${field} twice, the second climbing out`, json(target, good.replace(/}$/, `,"${field}":"../../../etc/passwd"}`)))
    }
    add('a __proto__ key', json(target, good.replace(/^{/, '{"__proto__":{"polluted":"yes","status":"completed"},')))
    add('a nested __proto__ key', json(target, good.replace(/^{/, '{"meta":{"__proto__":{"polluted":"yes"}},')))
    add('a constructor.prototype key', json(target, good.replace(/^{/, '{"constructor":{"prototype":{"polluted":"yes"}},')))
    for (const [name, body] of Object.entries({
      null: 'null',
      'an array': '[]',
      'a string': '"text"',
      'a number': '0',
      'true': 'true',
      'nothing': '',
      'only spaces': '   ',
      'an array of the good body': `[${good}]`,
      'the good body twice': good + good,
      'trailing garbage': good + 'xyz',
      'a comment': '/* hi */' + good,
      'single quotes': good.replaceAll('"', '\''),
      'NaN': '{"seed":NaN}',
      'arrays nested deeply': '['.repeat(ctx.depth) + ']'.repeat(ctx.depth),
      'objects nested deeply': '{"a":'.repeat(ctx.depth) + '1' + '}'.repeat(ctx.depth),
      'an unterminated string': '{"schema":"dada',
      'an invalid escape': '{"schema":"\\x41"}',
      'a raw control character in a string': '{"schema":"da\u0001da"}'
    })) {
      add(`the body is ${name}`, json(target, body))
    }
    add('invalid UTF-8 bytes', json(target, Buffer.concat([Buffer.from('{"schema":"'), Buffer.from([0xff, 0xfe, 0xc0, 0xaf]), Buffer.from('"}')])))
    add('a UTF-16 body', json(target, Buffer.from(good, 'utf16le'), 'application/json; charset=utf-16le'))
    add('JSON sent as text/plain', json(target, good, 'text/plain'))
    add('JSON sent as a form', json(target, good, 'application/x-www-form-urlencoded'))
    add('JSON sent as application/jsonp', json(target, good, 'application/jsonp'))
    add('JSON without a content type', { method: target.method, url: target.url, payload: good })
    add('a JSON body of 2 MiB', json(target, JSON.stringify({ ...target.good, padding: 'x'.repeat(2 * 1024 * 1024) })), { refusal: { status: 413 } })
    add(`a chunked JSON body of ${ctx.floodBytes} bytes`, json(target, flood(ctx.floodBytes)), { refusal: { status: 413 } })
  }

  // Fields only some routes have.
  const execute = targets(ctx)['POST /api/schema/pipeline/execute']!
  for (const [name, extra] of Object.entries({
    'an unknown schema climbing out': { schema: '../../configs/pipelines/dada' },
    'an output config climbing out': { output_configs: ['../../etc/passwd'] },
    'output configs not unique': { output_configs: ['upload', 'upload'] },
    'nine output configs': { output_configs: Array.from({ length: 9 }, (_, i) => `c${i}`) },
    'an unknown aspect ratio': { aspect_ratio: '1:1000000' },
    'an unknown execution mode': { execution_mode: 'turbo' },
    'safety off by a look-alike': { safety_level: 'оff' },
    'a negative seed': { seed: -1 },
    'a seed past 2^53': { seed: 2 ** 60 },
    'a fractional seed': { seed: 1.5 },
    'a seed too large for a double': '1e400',
    'a seed of 400 digits': '9'.repeat(400),
    'an input of 20001 characters': { input_text: 'x'.repeat(20001) },
    'an empty input': { input_text: '' },
    'a negative prompt of 2001 characters': { negative_prompt: 'x'.repeat(2001) }
  })) {
    // Numbers JSON.stringify cannot write are spliced in as text.
    const body = typeof extra === 'string' ? JSON.stringify({ ...execute.good, seed: 0 }).replace('"seed":0', `"seed":${extra}`) : JSON.stringify({ ...execute.good, ...extra })
    cases.push({ name: `POST /api/schema/pipeline/execute: ${name}`, send: { inject: json(execute, body) } })
  }
  const patch = targets(ctx)['PATCH /api/runs/:run_id']!
  for (const [name, body] of Object.entries({
    'only an unknown field': { mood: 'happy' },
    'an unknown status': { status: 'hacked' },
    'an empty object': {}
  })) {
    cases.push({ name: `PATCH /api/runs/:run_id: ${name}`, send: { inject: json(patch, JSON.stringify(body)) } })
  }
  // Texts a person could type: stored as they are (or refused), never a failure.
  const create = targets(ctx)['POST /api/runs']!
  for (const [name, text] of Object.entries({ 'a NUL': 'ab\u0000cd', 'a lone surrogate': 'ab\ud800cd', 'only control characters': '\u0001\u0002\u0003', 'a right-to-left override': 'abc\u202Egnp.exe' })) {
    cases.push({
      name: `POST /api/runs: an input text with ${name}`,
      send: { inject: json(create, JSON.stringify({ ...create.good, input_text: text })) },
      accept: (answer) => jsonOf(answer)?.status === 'created' ? null : 'the answer is not the new run'
    })
  }
  cases.push(...queryCases())
  return cases
}

/** GET /api/runs with hostile filters: a listing or a refusal, never a failure of the index. */
function queryCases (): HostileCase[] {
  const listing = (answer: Answer): string | null => Array.isArray(jsonOf(answer)?.runs) ? null : 'the answer is not a listing'
  const cases: HostileCase[] = []
  const queries: Record<string, string> = {
    'q of NULs': 'q=%00%00%00',
    'q with a NUL inside': 'q=ab%00cd',
    'q with a quote': 'q=%22',
    'q with full-text syntax': 'q=a%20OR%20b',
    'q with NEAR': 'q=NEAR(a%20b)',
    'q with a column filter': 'q=input_text%3Ax',
    'q with a star': 'q=*',
    'q with a caret': 'q=%5Eabc',
    'q with parentheses': 'q=((',
    'q with SQL': 'q=%27%29%3B%20DROP%20TABLE%20runs%3B--',
    'q with a LIKE wildcard': 'q=%25',
    'q with an underscore': 'q=_',
    'q of 201 characters': `q=${'a'.repeat(201)}`,
    'q given twice': 'q=a&q=b',
    'limit 0': 'limit=0',
    'limit negative': 'limit=-1',
    'limit huge': 'limit=1000000000',
    'limit a word': 'limit=all',
    'a cursor not given out': 'cursor=AAAA',
    'a cursor of SQL': 'cursor=%27%20OR%201%3D1--',
    'a cursor of 201 characters': `cursor=${'a'.repeat(201)}`,
    'a date that does not exist': 'from=2025-02-30',
    'a date of year 99999': 'from=99999-01-01',
    'not a date': 'to=yesterday',
    'an unknown status': 'status=hacked',
    'an unknown media type': 'media_type=..%2f',
    'a schema climbing out': 'schema=..%2f..%2fetc',
    'a backend with a NUL': 'backend=a%00b',
    'a user id of 201 characters': `user_id=${'u'.repeat(201)}`,
    'a parameter polluting the prototype': '__proto__%5Bpolluted%5D=yes&constructor%5Bprototype%5D%5Bpolluted%5D=yes'
  }
  for (const [name, query] of Object.entries(queries)) {
    const listable = /^q (of NULs|with (a NUL|a quote|full-text|NEAR|a column|a star|a caret|parentheses|SQL|a LIKE|an underscore))|polluting/.test(name)
    cases.push({ name: `GET /api/runs?${name}`, send: { inject: { method: 'GET', url: `/api/runs?${query}` } }, ...(listable ? { accept: listing } : {}) })
  }
  return cases
}

/** A JSON body that never ends by itself, made as it is read: nothing of it is held in memory here. */
export function flood (bytes: number, head = '{"schema":"dada","input_text":"'): Readable {
  const chunk = Buffer.alloc(64 * 1024, 'a')
  let sent = 0
  return new Readable({
    read () {
      if (sent === 0) {
        sent += head.length
        this.push(head)
        return
      }
      if (sent >= bytes) {
        this.push('"}')
        this.push(null)
        return
      }
      sent += chunk.length
      this.push(chunk)
    }
  })
}
