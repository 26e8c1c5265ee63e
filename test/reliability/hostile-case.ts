import type { InjectOptions } from 'fastify'

// What a hostile request is, what it got, and when that answer is right.

/** One answer as a client saw it; status null: the connection closed without one. */
export interface Answer {
  status: number | null
  body: Buffer
}

export type Sent =
  /** a well-formed request, through app.inject */
  | { inject: InjectOptions }
  /** bytes on a socket of the listening server, exactly as written (paths are not normalised) */
  | { raw: string | Buffer }

export interface HostileCase {
  /** unique and stable across runs: FIXED_ON_OTHER_BRANCHES names cases by it */
  name: string
  send: Sent
  /** which app takes it: the one that allows no private host, or the one that allows the redirector's name */
  app?: 'main' | 'redirects'
  /** when a particular refusal is the right one */
  refusal?: { status?: number, code?: string }
  /**
   * For requests that may rightly succeed (a JPEG named .png is stored as the
   * JPEG it is): judges a 2xx answer, returning what is wrong or null.
   */
  accept?: (answer: Answer) => string | null
  /** a HEAD request: its answer has no body to judge */
  bodiless?: boolean
  /** the server may close the connection without answering (a CONNECT, a TLS handshake) */
  mayCloseSilently?: boolean
  /** a generated mutation of a good request: any 2xx is fine, only 5xx and answers outside the contract are not */
  fuzz?: boolean
}

export interface Leaks {
  /** strings no answer may contain: a secret outside RUNS_DIR, an unlisted file's content, the storage path */
  forbidden: string[]
}

/** Everything wrong with an answer, in words; empty when it is right. */
export function problemsOf (c: HostileCase, answer: Answer, leaks: Leaks): string[] {
  const problems: string[] = []
  const text = answer.body.toString('latin1')
  for (const secret of leaks.forbidden) if (text.includes(secret)) problems.push(`the answer contains ${JSON.stringify(secret.slice(0, 40))}`)
  if (answer.status === null) {
    if (c.mayCloseSilently !== true) problems.push('the connection closed without an answer')
    return problems
  }
  const { status } = answer
  if (status >= 500) problems.push(`answered ${status}${describeBody(answer)}`)
  else if (status < 400) {
    if (c.fuzz === true) return problems
    if (c.accept === undefined) problems.push(`answered ${status}: a hostile request was not refused`)
    else {
      const wrong = c.accept(answer)
      if (wrong !== null) problems.push(`answered ${status}: ${wrong}`)
    }
    return problems
  }
  if (c.bodiless === true) return problems
  const body = jsonOf(answer)
  if (body === null || typeof body.code !== 'string' || body.statusCode !== status || typeof body.message !== 'string') {
    problems.push(`answered ${status} outside the contract's shape${describeBody(answer)}`)
    return problems
  }
  if (c.refusal?.status !== undefined && status !== c.refusal.status) problems.push(`answered ${status} ${String(body.code)}, expected ${c.refusal.status}`)
  if (c.refusal?.code !== undefined && body.code !== c.refusal.code) problems.push(`answered ${status} ${String(body.code)}, expected ${c.refusal.code}`)
  return problems
}

export function jsonOf (answer: Answer): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(answer.body.toString('utf8'))
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : null
  } catch {
    return null
  }
}

function describeBody (answer: Answer): string {
  const text = answer.body.toString('utf8').replace(/\s+/g, ' ').slice(0, 160)
  return text === '' ? ' with an empty body' : `: ${text}`
}

/** A request line and headers, closed by the server after its answer so no client waits for a timeout. */
export function rawRequest (method: string, path: string, headers: Record<string, string> = {}, body = ''): string {
  const lines = [`${method} ${path} HTTP/1.1`, 'Host: localhost', 'Connection: close']
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`)
  if (body !== '') lines.push(`Content-Length: ${Buffer.byteLength(body)}`)
  return lines.join('\r\n') + '\r\n\r\n' + body
}
