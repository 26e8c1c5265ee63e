import { randomFrom } from '../../services/backends/builtin/seeded.js'
import { rawRequest, type HostileCase } from './hostile-case.js'

// Seeded random mutations of good requests, for the full version: whatever
// comes out may be refused or even taken, but never answered with a 5xx or
// outside the contract. The seed is printed, so a failure can be replayed
// with RELIABILITY_SEED.

export interface FuzzContext {
  runId: string
  mediaRunId: string
  patchRunId: string
  image: Buffer
  seed: number
  count: number
}

const TOKENS = ['..', '%2e%2e', '%2f', '%5c', '\\', '%00', '%0d%0a', '%c0%ae', '%ef%bc%8e', '%25', '%', '//', '/./', ';', '?', '#', '*', '~', '$', '%u002e', 'A'.repeat(300), '%e2%80%ae', '0', '-1', 'ü']
const JSON_TOKENS = ['"', '\\', '{', '}', '[', ']', ',', ':', 'null', 'true', '1e999', '-0', '"__proto__"', '\u0000', '\ud800', '\\u0000', '"../../x"', ' '.repeat(100)]

export function fuzzCases (ctx: FuzzContext): HostileCase[] {
  // The builtin generator's seeded randomness: the same cases for a seed on every machine.
  const next = randomFrom('hostile fuzz', ctx.seed)
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!
  const mutate = (text: string, tokens: readonly string[]): string => {
    let out = text
    const edits = 1 + Math.floor(next() * 4)
    for (let i = 0; i < edits; i++) {
      const at = Math.floor(next() * (out.length + 1))
      const kind = next()
      if (kind < 0.5) out = out.slice(0, at) + pick(tokens) + out.slice(at)
      else if (kind < 0.75) out = out.slice(0, at) + out.slice(at + 1 + Math.floor(next() * 8))
      else out = out.slice(0, at) + String.fromCharCode(Math.floor(next() * 256)) + out.slice(at + 1)
    }
    return out
  }
  const paths = [
    `/api/runs/${ctx.runId}`, `/api/runs/${ctx.runId}/files/metadata.json`, `/api/runs/${ctx.runId}/files/output_image.png`,
    `/api/media/image/${ctx.runId}`, `/api/media/image/${ctx.runId}/0`, `/api/media/info/${ctx.runId}`, `/api/media/run/${ctx.runId}`,
    `/api/runs/${ctx.runId}/export.zip`, '/api/runs?q=Blume&limit=5', '/api/schema/pipelines'
  ]
  const bodies: Array<{ url: string, method: string, body: string }> = [
    { method: 'POST', url: '/api/runs', body: JSON.stringify({ schema: 'dada', execution_mode: 'eco', input_text: 'Eine Blume' }) },
    { method: 'PATCH', url: `/api/runs/${ctx.patchRunId}`, body: JSON.stringify({ transformed_text: 'A flower' }) },
    { method: 'POST', url: `/api/runs/${ctx.mediaRunId}/media`, body: JSON.stringify({ source: 'data', data: ctx.image.toString('base64'), config: 'upload' }) }
  ]
  const cases: HostileCase[] = []
  for (let i = 0; i < ctx.count; i++) {
    if (next() < 0.5) {
      // A raw request line carries only printable ASCII and starts with a slash: what the parser refuses is a case of its own (malformed HTTP).
      const path = '/' + mutate(pick(paths), TOKENS).replace(/^\/+/, '').replace(/[^\x21-\x7e]/g, (c) => encodeURIComponent(c))
      cases.push({ name: `fuzz ${ctx.seed}/${i}: GET ${path.slice(0, 120)}`, send: { raw: rawRequest('GET', path) }, fuzz: true })
    } else {
      const { method, url, body } = pick(bodies)
      const mutated = mutate(body, JSON_TOKENS)
      cases.push({ name: `fuzz ${ctx.seed}/${i}: ${method} ${url} ${mutated.slice(0, 80)}`, send: { inject: { method: method as 'POST', url, headers: { 'content-type': 'application/json' }, payload: mutated } }, fuzz: true })
    }
  }
  return cases
}
