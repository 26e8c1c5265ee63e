import { rawRequest, type Answer, type HostileCase } from './hostile-case.js'

// Traversal in every id and file name a route takes, sent as raw bytes so
// that no client library normalises `..` or `%2e%2e` away before the router
// sees them.

export interface PathContext {
  /** a run with one stored PNG, still `created`, with an unlisted file in its folder */
  runId: string
  /** another run: a request through the first may never reach it */
  otherRunId: string
  /** the bytes of the first run's image */
  image: Buffer
  adminToken: string
}

const MEDIA_TYPES = ['image', 'audio', 'video', 'model3d']

/** What may stand where a run id goes: every way of climbing out, hiding a NUL, or looking like a UUID. */
function idPayloads (ctx: PathContext): Record<string, string> {
  const id = ctx.runId
  return {
    'dot-dot': '..',
    dot: '.',
    'encoded dot-dot': '%2e%2e',
    'encoded dot-dot, upper case': '%2E%2E',
    'half-encoded dot-dot': '.%2e',
    'dot-dot-slash to the secret': '..%2f..%2fsecret.txt',
    'dot-dot-slash to /etc/passwd': '..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd',
    'fully encoded climb': '%2e%2e%2f%2e%2e%2fsecret.txt',
    'double-encoded climb': '%252e%252e%252fsecret.txt',
    'backslash climb': '..%5c..%5csecret.txt',
    'raw backslash climb': '..\\..\\secret.txt',
    'overlong UTF-8 dots': '%c0%ae%c0%ae%c0%afsecret.txt',
    'overlong UTF-8 slash': '..%c0%af..%c0%afsecret.txt',
    'fullwidth dots and slash': '%ef%bc%8e%ef%bc%8e%ef%bc%8fsecret.txt',
    'two-dot leader': '%e2%80%a5%2fsecret.txt',
    'absolute path': '%2fetc%2fpasswd',
    'file URL': 'file:%2f%2f%2fetc%2fpasswd',
    'Windows drive': 'C:%5cWindows%5cwin.ini',
    'NUL alone': '%00',
    'NUL after the id': `${id}%00`,
    'NUL and an extension after the id': `${id}%00.json`,
    'the id, then a climb': `${id}%2f..%2f..%2fsecret.txt`,
    'the id, then a climb into the other run': `${id}%2f..%2f${ctx.otherRunId}`,
    'the id with a trailing space': `${id}%20`,
    'the id with a trailing newline': `${id}%0a`,
    'the id with CRLF and a header': `${id}%0d%0aSet-Cookie:%20a=1`,
    'the id with a unicode hyphen': id.replace(/-/g, '%e2%80%90'),
    'the id with fullwidth digits': id.replace(/[0-9]/g, (d) => `%ef%bc%9${d}`),
    'the id with a Cyrillic a': `${id.slice(0, -1)}%d0%b0`,
    'the id with Arabic-Indic digits': id.replace(/[0-9]/g, (d) => `%d9%a${d}`),
    'a UUID too long': `${id}0`,
    'a UUID with braces': `%7b${id}%7d`,
    'an overlong id': 'a'.repeat(5000),
    'an overlong climb': '..%2f'.repeat(400) + 'secret.txt',
    'a lone percent': '%',
    'a broken escape': '%zz',
    'a nested escape': '%%32%65%%32%65',
    'shell substitution': '$(touch%20%2ftmp%2fpwned)',
    'a template': '%7b%7b7*7%7d%7d',
    'a JNDI lookup': '$%7bjndi:ldap:%2f%2f127.0.0.1%2fa%7d',
    'SQL': "'%20OR%201=1--",
    'a device name': 'CON',
    'a wildcard': '*'
  }
}

/** File names in /api/runs/:run_id/files/:filename that are not a name the metadata lists. */
function filenamePayloads (ctx: PathContext): Record<string, string> {
  return {
    'climb to the secret': '..%2f..%2fsecret.txt',
    'climb to the index': '..%2f.index.sqlite',
    'the index by name': '.index.sqlite',
    'climb into the other run': `..%2f${ctx.otherRunId}%2finput_text.txt`,
    'climb into the other run\'s metadata': `..%2f${ctx.otherRunId}%2fmetadata.json`,
    'encoded climb': '%2e%2e%2f%2e%2e%2fsecret.txt',
    'double-encoded climb': '%252e%252e%252fsecret.txt',
    'backslash climb': '..%5c..%5csecret.txt',
    'overlong UTF-8 climb': '%c0%ae%c0%ae%c0%afsecret.txt',
    'fullwidth climb': '%ef%bc%8e%ef%bc%8e%ef%bc%8fsecret.txt',
    'absolute path': '%2fetc%2fpasswd',
    'a listed name, then a climb': 'output_image.png%2f..%2f..%2fsecret.txt',
    'a listed name with a NUL': 'metadata.json%00',
    'a listed name, NUL, extension': 'metadata.json%00.png',
    'a listed name with a slash': 'metadata.json%2f',
    'a listed name behind ./': '.%2fmetadata.json',
    'a listed name in upper case': 'METADATA.JSON',
    'a listed name with a trailing space': 'metadata.json%20',
    'a listed name with a trailing dot': 'metadata.json.',
    'an NTFS stream': 'metadata.json::$DATA',
    'fullwidth letters that normalise to a listed name': '%ef%bd%8d%ef%bd%85%ef%bd%94%ef%bd%81%ef%bd%84%ef%bd%81%ef%bd%94%ef%bd%81.json',
    'a one-dot leader for the dot': 'metadata%e2%80%a4json',
    'a file in the folder the metadata does not list': 'notes.txt',
    'a temporary name': '.tmp-0123456789abcdef',
    'an output not made yet': 'output_image_2.png',
    'dot': '.',
    'dot-dot': '..',
    'encoded dot-dot': '%2e%2e',
    'NUL alone': '%00',
    'CRLF and a header': 'input_text.txt%0d%0aSet-Cookie:%20a=1',
    'a name of 256 characters': 'a'.repeat(256),
    'a name of 5000 characters': 'a'.repeat(5000)
  }
}

/** Output indexes: negative, huge, not a number, hidden NULs, climbs. */
const INDEX_PAYLOADS: Record<string, string> = {
  negative: '-1',
  'past the end': '1',
  'past the limit': '100001',
  'beyond any integer': '99999999999999999999999',
  fraction: '1.5',
  'exponent past the end': '1e3',
  NUL: '%00',
  'zero and NUL': '0%00',
  'dot-dot': '..',
  'encoded climb': '%2e%2e%2f%2e%2e%2fsecret.txt',
  NaN: 'NaN',
  Infinity: 'Infinity',
  'a word': 'first',
  'fullwidth one': '%ef%bc%91',
  'an overlong number': '9'.repeat(400)
}

/** The routes that take a run id, and how a raw request names one. */
function idRoutes (ctx: PathContext): Record<string, (id: string) => string> {
  const json = { 'Content-Type': 'application/json' }
  const routes: Record<string, (id: string) => string> = {
    'GET /api/runs/:run_id': (id) => rawRequest('GET', `/api/runs/${id}`),
    'GET /api/runs/:run_id/export.zip': (id) => rawRequest('GET', `/api/runs/${id}/export.zip`),
    'GET /api/runs/:run_id/files/metadata.json': (id) => rawRequest('GET', `/api/runs/${id}/files/metadata.json`),
    'PATCH /api/runs/:run_id': (id) => rawRequest('PATCH', `/api/runs/${id}`, json, JSON.stringify({ transformed_text: 'pwned' })),
    'POST /api/runs/:run_id/media': (id) => rawRequest('POST', `/api/runs/${id}/media`, json, JSON.stringify({ source: 'data', data: ctx.image.toString('base64'), config: 'upload' })),
    'DELETE /api/runs/:run_id (with the admin token)': (id) => rawRequest('DELETE', `/api/runs/${id}`, { Authorization: `Bearer ${ctx.adminToken}` }),
    'GET /api/media/info/:run_id': (id) => rawRequest('GET', `/api/media/info/${id}`),
    'GET /api/media/run/:run_id': (id) => rawRequest('GET', `/api/media/run/${id}`)
  }
  for (const type of MEDIA_TYPES) {
    routes[`GET /api/media/${type}/:run_id`] = (id) => rawRequest('GET', `/api/media/${type}/${id}`)
    routes[`HEAD /api/media/${type}/:run_id/0`] = (id) => rawRequest('HEAD', `/api/media/${type}/${id}/0`)
  }
  return routes
}

export function pathCases (ctx: PathContext): HostileCase[] {
  const cases: HostileCase[] = []
  const routes = idRoutes(ctx)
  for (const [payloadName, payload] of Object.entries(idPayloads(ctx))) {
    for (const [routeName, request] of Object.entries(routes)) {
      cases.push({ name: `run id ${payloadName} in ${routeName}`, send: { raw: request(payload) }, ...(routeName.startsWith('HEAD') ? { bodiless: true } : {}) })
    }
  }
  for (const [name, payload] of Object.entries(filenamePayloads(ctx))) {
    cases.push({ name: `file name ${name} in GET /api/runs/:run_id/files/:filename`, send: { raw: rawRequest('GET', `/api/runs/${ctx.runId}/files/${payload}`) } })
  }
  for (const [name, payload] of Object.entries(INDEX_PAYLOADS)) {
    cases.push({ name: `output index ${name} in GET /api/media/image/:run_id/:index`, send: { raw: rawRequest('GET', `/api/media/image/${ctx.runId}/${payload}`) } })
  }
  // Climbs in the media type and in the route itself.
  for (const [name, path] of Object.entries({
    'media type dot-dot': `/api/media/..%2f..%2fsecret.txt/${ctx.runId}`,
    'media type climbing to the runs route': `/api/media/%2e%2e/runs/${ctx.runId}`,
    'media type in upper case': `/api/media/IMAGE/${ctx.runId}`,
    'a climb out of the API': '/api/../../../../etc/passwd',
    'an encoded climb out of the API': '/api/%2e%2e/%2e%2e/%2e%2e/etc/passwd',
    'a climb through the files route': `/api/runs/${ctx.runId}/files/../../../secret.txt`,
    'a climb through the files route into the other run': `/api/runs/${ctx.runId}/files/../../${ctx.otherRunId}/input_text.txt`,
    'a backslash climb through the files route': `/api/runs/${ctx.runId}/files/..\\..\\secret.txt`,
    'a double slash before the climb': `/api/runs/${ctx.runId}/files//../../secret.txt`,
    'a climb in the media index position': `/api/media/image/${ctx.runId}/../../../secret.txt`
  })) {
    cases.push({ name: `path ${name}`, send: { raw: rawRequest('GET', path) } })
  }
  // The same id in upper case names the same run: served, and only the run's own bytes.
  cases.push({
    name: 'run id in upper case in GET /api/media/image/:run_id',
    send: { raw: rawRequest('GET', `/api/media/image/${ctx.runId.toUpperCase()}`) },
    accept: (answer) => ownImage(answer, ctx.image)
  })
  return cases
}

// A raw answer's body comes back decoded as UTF-8 (lossy for a PNG), so the image is compared the same way.
function ownImage (answer: Answer, image: Buffer): string | null {
  return answer.body.toString('utf8') === image.toString('utf8') ? null : 'served something other than the run\'s own image'
}
