/// <reference lib="dom" />
import type { Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { mkdir, readFile } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { createRequire } from 'node:module'
import type { Page } from 'playwright-core'

/** Screenshots the page tests keep (git-ignored); docs/ holds the ones the README shows. */
export const SCREENSHOTS = new URL('../../test-output/', import.meta.url)

export interface Answer { method: string, url: string, status: number, range: string | undefined }

/** The app listening on a free port of 127.0.0.1, every answer recorded; closed after the test. */
export async function listenRecording (t: Test, app: FastifyInstance): Promise<{ origin: string, answers: Answer[] }> {
  const answers: Answer[] = []
  // on the server, not a hook: the app may be ready already (hooks are closed then)
  app.server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    response.on('finish', () => {
      answers.push({
        method: request.method ?? '',
        url: request.url ?? '',
        status: response.statusCode,
        range: request.headers.range
      })
    })
  })
  const origin = await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await app.close() })
  return { origin, answers }
}

const axeSource = await readFile(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8')

/** axe-core's serious and critical findings on the page as it is now, as "rule: target" lines. */
export async function seriousViolations (page: Page): Promise<string[]> {
  if (!await page.evaluate(() => 'axe' in window)) await page.addScriptTag({ content: axeSource })
  return await page.evaluate(async () => {
    const result = await (window as any).axe.run(document, { resultTypes: ['violations'] })
    return result.violations
      .filter((v: any) => v.impact === 'serious' || v.impact === 'critical')
      .flatMap((v: any) => v.nodes.map((n: any) => `${String(v.id)}: ${String(n.target.join(' '))}`))
  })
}

export async function screenshot (page: Page, name: string): Promise<string> {
  await mkdir(SCREENSHOTS, { recursive: true })
  const path = new URL(name, SCREENSHOTS).pathname
  await page.screenshot({ path, fullPage: true })
  return path
}
