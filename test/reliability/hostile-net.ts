import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { jsonOf, rawRequest, type Answer, type HostileCase } from './hostile-case.js'

// URL sources that point into the lab network or the host itself, directly
// or through redirects, and HTTP that the parser has to refuse.

export interface NetContext {
  /** the run URL media is added to, in each app */
  mainRunId: string
  redirectsRunId: string
  /** a server on 127.0.0.1 that would serve a PNG to anyone who reached it */
  targetPort: number
  /** a redirector on 127.0.0.1, reachable by the name `localhost` only in the redirects app */
  redirectorPort: number
  png: Buffer
}

/** Hosts that are the machine itself, the lab network or its metadata service, in every spelling; {T} is the target's port. */
const PRIVATE_URLS: Record<string, string> = {
  'loopback 127.0.0.1': 'http://127.0.0.1:{T}/pwned.png',
  'loopback 127.0.0.2': 'http://127.0.0.2:{T}/pwned.png',
  'loopback with a trailing dot': 'http://127.0.0.1.:{T}/pwned.png',
  'localhost': 'http://localhost:{T}/pwned.png',
  'LOCALHOST': 'http://LOCALHOST:{T}/pwned.png',
  'localhost with a trailing dot': 'http://localhost.:{T}/pwned.png',
  'a subdomain of localhost': 'http://pwned.localhost:{T}/pwned.png',
  'IPv6 loopback ::1': 'http://[::1]:{T}/pwned.png',
  'IPv6 unspecified ::': 'http://[::]:{T}/pwned.png',
  'IPv4-mapped ::ffff:127.0.0.1': 'http://[::ffff:127.0.0.1]:{T}/pwned.png',
  'IPv4-mapped in hex ::ffff:7f00:1': 'http://[::ffff:7f00:1]:{T}/pwned.png',
  'IPv4-mapped written out': 'http://[0:0:0:0:0:ffff:127.0.0.1]:{T}/pwned.png',
  'IPv4-compatible ::127.0.0.1': 'http://[::127.0.0.1]:{T}/pwned.png',
  'NAT64 of loopback': 'http://[64:ff9b::127.0.0.1]:{T}/pwned.png',
  'NAT64 of the metadata service': 'http://[64:ff9b::169.254.169.254]/latest/meta-data/',
  '6to4 of loopback': 'http://[2002:7f00:1::1]:{T}/pwned.png',
  'unspecified 0.0.0.0': 'http://0.0.0.0:{T}/pwned.png',
  'zero': 'http://0:{T}/pwned.png',
  'decimal 2130706433': 'http://2130706433:{T}/pwned.png',
  'hex 0x7f000001': 'http://0x7f000001:{T}/pwned.png',
  'hex parts 0x7f.1': 'http://0x7f.1:{T}/pwned.png',
  'octal 0177.0.0.1': 'http://0177.0.0.1:{T}/pwned.png',
  'octal whole 017700000001': 'http://017700000001:{T}/pwned.png',
  'short 127.1': 'http://127.1:{T}/pwned.png',
  'fullwidth digits': 'http://１２７.０.０.１:{T}/pwned.png',
  'ideographic full stops': 'http://127。0。0。1:{T}/pwned.png',
  'credentials before loopback': 'http://user:pass@127.0.0.1:{T}/pwned.png',
  'a percent-encoded host': 'http://%31%32%37.0.0.1:{T}/pwned.png',
  'private 10/8': 'http://10.0.0.1/pwned.png',
  'private 10/8, its last address': 'http://10.255.255.254/pwned.png',
  'private 172.16/12': 'http://172.16.0.1/pwned.png',
  'private 172.16/12, its last block': 'http://172.31.255.254/pwned.png',
  'private 192.168/16': 'http://192.168.0.1/pwned.png',
  'a ComfyUI in the lab': 'http://192.168.1.20:8188/view?filename=x.png',
  'shared address space 100.64/10': 'http://100.64.0.1/pwned.png',
  'link-local metadata 169.254.169.254': 'http://169.254.169.254/latest/meta-data/iam/security-credentials/',
  'link-local metadata in decimal': 'http://2852039166/latest/meta-data/',
  'link-local metadata in hex': 'http://0xa9fea9fe/latest/meta-data/',
  'link-local metadata in octal': 'http://0251.0376.0251.0376/latest/meta-data/',
  'link-local metadata IPv4-mapped': 'http://[::ffff:169.254.169.254]/latest/meta-data/',
  'IPv6 link-local fe80::1': 'http://[fe80::1]/pwned.png',
  'IPv6 unique local fd00::1': 'http://[fd00::1]/pwned.png',
  'IPv6 unique local fc00::1': 'http://[fc00::1]/pwned.png',
  'IPv4-mapped private 10.0.0.1': 'http://[::ffff:10.0.0.1]/pwned.png',
  'multicast 224.0.0.1': 'http://224.0.0.1/pwned.png',
  'broadcast 255.255.255.255': 'http://255.255.255.255/pwned.png',
  'benchmarking 198.18.0.1': 'http://198.18.0.1/pwned.png'
}

/** Schemes a download must never use. */
const FOREIGN_SCHEMES: Record<string, string> = {
  'file:///etc/passwd': 'file:///etc/passwd',
  'file://localhost/etc/passwd': 'file://localhost/etc/passwd',
  'ftp to loopback': 'ftp://127.0.0.1:{T}/pwned.png',
  'gopher to loopback': 'gopher://127.0.0.1:{T}/_GET%20/pwned.png',
  'dict to loopback': 'dict://127.0.0.1:{T}/info',
  'ws to loopback': 'ws://127.0.0.1:{T}/pwned.png',
  'a data URL': 'data:image/png;base64,iVBORw0KGgo=',
  'javascript': 'javascript:alert(1)',
  'a relative URL': '/etc/passwd',
  'a protocol-relative URL': '//127.0.0.1:{T}/pwned.png',
  'not a URL': 'not a url at all'
}

export function ssrfCases (ctx: NetContext): HostileCase[] {
  const cases: HostileCase[] = []
  const fill = (url: string): string => url.replaceAll('{T}', String(ctx.targetPort))
  const fetch = (runId: string, url: string): HostileCase['send'] => ({
    inject: { method: 'POST', url: `/api/runs/${runId}/media`, headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ source: 'url', url, config: 'upload' }) }
  })
  for (const [name, url] of Object.entries(PRIVATE_URLS)) {
    // Non-ASCII digits and dots are no URI to the body schema already (INVALID_REQUEST).
    const refusal = /fullwidth|ideographic/.test(name) ? { status: 400 } : { status: 400, code: 'FETCH_FORBIDDEN' }
    cases.push({ name: `URL source: ${name}`, send: fetch(ctx.mainRunId, fill(url)), refusal })
  }
  for (const [name, url] of Object.entries(FOREIGN_SCHEMES)) {
    cases.push({ name: `URL source: ${name}`, send: fetch(ctx.mainRunId, fill(url)), refusal: { status: 400 } })
  }
  // Through the redirector, which the redirects app may reach by its name: every hop is checked again.
  const redirector = `http://localhost:${ctx.redirectorPort}`
  const via = (target: string, status = 302, hops = 1): string => `${redirector}/hop/${hops}?status=${status}&to=${encodeURIComponent(target)}`
  for (const [name, url] of Object.entries({ ...PRIVATE_URLS, ...FOREIGN_SCHEMES })) {
    if (/relative|not a URL|^localhost|LOCALHOST|a subdomain/.test(name)) continue
    cases.push({ name: `URL source redirected to ${name}`, app: 'redirects', send: fetch(ctx.redirectsRunId, via(fill(url))), refusal: { status: 400 } })
  }
  for (const status of [301, 303, 307, 308]) {
    cases.push({ name: `URL source redirected with ${status} to loopback`, app: 'redirects', send: fetch(ctx.redirectsRunId, via(fill(PRIVATE_URLS['loopback 127.0.0.1']!), status)), refusal: { status: 400, code: 'FETCH_FORBIDDEN' } })
  }
  cases.push({ name: 'URL source redirected three times, then to loopback', app: 'redirects', send: fetch(ctx.redirectsRunId, via(fill(PRIVATE_URLS['loopback 127.0.0.1']!), 302, 3)), refusal: { status: 400, code: 'FETCH_FORBIDDEN' } })
  // The control: a redirect to the allowed name is followed and stored, so the refusals above are the policy's and not a dead redirector's.
  cases.push({
    name: 'URL source redirected to the allowed name (control: stored)',
    app: 'redirects',
    send: fetch(ctx.redirectsRunId, via(`${redirector}/control.png`)),
    accept: (answer) => jsonOf(answer)?.format === 'png' ? null : 'the control download was not stored as a PNG'
  })
  return cases
}

/** Serves a PNG at any path and records what was asked: the corpus must never reach it except for the control. */
export async function startTarget (png: Buffer): Promise<{ port: number, paths: string[], server: Server }> {
  const paths: string[] = []
  const server = createServer((request, response) => {
    paths.push(request.url ?? '')
    response.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': png.length }).end(png)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { port: (server.address() as AddressInfo).port, paths, server }
}

/** /hop/N?status=S&to=URL redirects N times before it sends the client to URL; /control.png is the target's PNG. */
export async function startRedirector (png: Buffer): Promise<{ port: number, server: Server }> {
  const server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://localhost')
    if (url.pathname === '/control.png') {
      response.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': png.length }).end(png)
      return
    }
    const hops = Number(/^\/hop\/(\d+)$/.exec(url.pathname)?.[1] ?? 0)
    const to = hops > 1 ? `/hop/${hops - 1}${url.search}` : url.searchParams.get('to') ?? '/'
    // A header carries bytes, not characters: non-ASCII goes percent-encoded, as a browser would send it.
    response.writeHead(Number(url.searchParams.get('status') ?? 302), { Location: to.replace(/[^\x21-\x7e]/g, (c) => encodeURIComponent(c)) }).end()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { port: (server.address() as AddressInfo).port, server }
}

/** HTTP the parser must refuse; raw, because no client library would send it. */
export function malformedHttpCases (): HostileCase[] {
  const json = 'Content-Type: application/json\r\n'
  const requests: Record<string, string | Buffer> = {
    'a bare CR in a header': 'GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\nConnection: close\r\n\r\n',
    'a bare CR ending the request line': 'GET /health HTTP/1.1\rHost: x\r\n\r\n',
    'two different Content-Length headers': `POST /api/runs HTTP/1.1\r\nHost: x\r\n${json}Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}`,
    'two equal Content-Length headers': `POST /api/runs HTTP/1.1\r\nHost: x\r\n${json}Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}`,
    'Content-Length and Transfer-Encoding': `POST /api/runs HTTP/1.1\r\nHost: x\r\n${json}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n`,
    'a negative Content-Length': `POST /api/runs HTTP/1.1\r\nHost: x\r\n${json}Content-Length: -1\r\n\r\n`,
    'a Content-Length in hex': `POST /api/runs HTTP/1.1\r\nHost: x\r\n${json}Content-Length: 0x2\r\n\r\n{}`,
    'a Content-Length list': `POST /api/runs HTTP/1.1\r\nHost: x\r\n${json}Content-Length: 2, 2\r\n\r\n{}`,
    'a Content-Length past any integer': `POST /api/runs HTTP/1.1\r\nHost: x\r\n${json}Content-Length: 99999999999999999999999\r\n\r\n{}`,
    'an oversized header': `GET /health HTTP/1.1\r\nHost: x\r\nX-A: ${'a'.repeat(20000)}\r\n\r\n`,
    'an oversized URL': `GET /api/runs/${'a'.repeat(20000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
    'no Host': 'GET /health HTTP/1.1\r\nConnection: close\r\n\r\n',
    'Expect: bogus': `POST /api/runs HTTP/1.1\r\nHost: x\r\n${json}Expect: bogus\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`,
    'a chunk size that is not hex': `POST /api/runs HTTP/1.1\r\nHost: x\r\n${json}Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`,
    'a chunk size past any integer': `POST /api/runs HTTP/1.1\r\nHost: x\r\n${json}Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n{}\r\n0\r\n\r\n`,
    'a negative chunk size': `POST /api/runs HTTP/1.1\r\nHost: x\r\n${json}Transfer-Encoding: chunked\r\n\r\n-2\r\n{}\r\n0\r\n\r\n`,
    'a chunk longer than its size': `POST /api/runs HTTP/1.1\r\nHost: x\r\n${json}Transfer-Encoding: chunked\r\n\r\n1\r\n{}\r\n0\r\n\r\n`,
    'oversized chunk extensions': `POST /api/runs HTTP/1.1\r\nHost: x\r\n${json}Transfer-Encoding: chunked\r\n\r\n2;${'a'.repeat(20000)}\r\n{}\r\n0\r\n\r\n`,
    'chunked not last in Transfer-Encoding': `POST /api/runs HTTP/1.1\r\nHost: x\r\n${json}Transfer-Encoding: chunked, gzip\r\n\r\n2\r\n{}\r\n0\r\n\r\n`,
    'an unknown Transfer-Encoding': `POST /api/runs HTTP/1.1\r\nHost: x\r\n${json}Transfer-Encoding: xchunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n`,
    'a space before the colon of Transfer-Encoding': `POST /api/runs HTTP/1.1\r\nHost: x\r\n${json}Transfer-Encoding : chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n`,
    'an unknown method': 'BREW /health HTTP/1.1\r\nHost: x\r\n\r\n',
    'a lower-case method': 'get /health HTTP/1.1\r\nHost: x\r\n\r\n',
    'an HTTP version 9.9': 'GET /health HTTP/9.9\r\nHost: x\r\n\r\n',
    'an HTTP/2 preface': 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
    'no HTTP at all': 'hello\r\n\r\n',
    'a header without a colon': 'GET /health HTTP/1.1\r\nHost: x\r\nnot a header\r\n\r\n',
    'a header name with a space': 'GET /health HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n',
    'a folded header line': 'GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n',
    'a NUL in a header value': 'GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n',
    'a NUL in the path': 'GET /api/runs/a\0b HTTP/1.1\r\nHost: x\r\n\r\n',
    'a space in the path': 'GET /api/runs/a b HTTP/1.1\r\nHost: x\r\n\r\n',
    'raw non-ASCII bytes in the path': Buffer.concat([Buffer.from('GET /api/runs/'), Buffer.from([0xff, 0xfe, 0xc0, 0xae]), Buffer.from(' HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')]),
    'a TLS ClientHello': Buffer.from('16030100a5010000a10303000102030405060708090a0b0c0d0e0f', 'hex')
  }
  const cases: HostileCase[] = Object.entries(requests).map(([name, raw]) => ({
    name: `HTTP: ${name}`,
    send: { raw },
    // Nothing follows a TLS record that is not HTTP; a server may well just hang up.
    ...(name === 'a TLS ClientHello' ? { mayCloseSilently: true } : {})
  }))
  // Node takes these as they come, keeping the first Host and reading a bare request line as HTTP/0.9; harmless for /health, which answers.
  const health = (answer: Answer): string | null => jsonOf(answer)?.status === 'ok' ? null : 'not the health answer'
  cases.push(
    { name: 'HTTP: two Host headers', send: { raw: 'GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n' }, accept: health },
    { name: 'HTTP: HTTP/0.9', send: { raw: 'GET /health\r\n\r\n' }, accept: health },
    { name: 'HTTP: CONNECT to a lab host', send: { raw: 'CONNECT 192.168.1.20:8188 HTTP/1.1\r\nHost: 192.168.1.20:8188\r\n\r\n' }, mayCloseSilently: true },
    { name: 'HTTP: an absolute URL to another host', send: { raw: rawRequest('GET', 'http://169.254.169.254/latest/meta-data/') } },
    { name: 'HTTP: an Upgrade to a WebSocket on a media route', send: { raw: rawRequest('GET', '/api/media/image/..%2f..', { Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version': '13' }) } },
    { name: 'HTTP: TRACE', send: { raw: rawRequest('TRACE', '/api/runs') } }
  )
  return cases
}
