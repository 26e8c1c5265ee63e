import t from 'tap'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { appendFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../app.js'
import { isRunId } from '../../services/storage/run-id.js'
import { fixtures } from '../fixtures/media.js'
import { multipartBody, testConfig } from '../helper.js'
import { testConfigsDir, tinyImage } from '../pipeline-setup.js'
import { rawExchange } from '../raw-http.js'
import { mapLimited } from './concurrency.js'
import { problemsOf, type Answer, type HostileCase } from './hostile-case.js'
import { fuzzCases } from './hostile-fuzz.js'
import { jsonCases } from './hostile-json.js'
import { mediaCases } from './hostile-media.js'
import { malformedHttpCases, ssrfCases, startRedirector, startTarget } from './hostile-net.js'
import { pathCases } from './hostile-paths.js'

// `npm test` runs the generated corpus once; `npm run test:reliability`
// (RELIABILITY_FULL=1) adds seeded random mutations of good requests and
// larger floods. RELIABILITY_SEED=n replays a seed the figures named;
// HOSTILE_LOG=file writes each request's status, name and problems there.
const FULL = process.env.RELIABILITY_FULL === '1'
const FUZZ_SEED = Number(process.env.RELIABILITY_SEED ?? Date.now() % 1_000_000)
const MAX_UPLOAD_BYTES = 64 * 1024
const ADMIN_TOKEN = 'hostile-corpus-admin-token'
/** RSS the corpus may add at its peak; in the full run a flood held whole would pass it by far. */
const RSS_GROWTH_LIMIT = 256 * 1024 * 1024


t.test('a generated corpus of hostile requests: each refused with a 4xx in the contract\'s shape, nothing written outside RUNS_DIR, nothing leaked, memory bounded', { timeout: FULL ? 1_800_000 : 90_000 }, async (t) => {
  // RUNS_DIR sits in a folder of its own with a secret next to it: anything
  // else that appears in that folder, or an answer carrying the secret, is a traversal.
  const parent = await mkdtemp(join(tmpdir(), 'runstore-hostile-'))
  t.teardown(async () => { await rm(parent, { recursive: true, force: true }) })
  const runsDir = join(parent, 'runs')
  const redirectRunsDir = join(parent, 'redirect-runs')
  await mkdir(runsDir)
  await mkdir(redirectRunsDir)
  const secret = `secret-${randomBytes(12).toString('hex')}`
  await writeFile(join(parent, 'secret.txt'), secret)
  const pwned = ['/tmp/pwned', '/tmp/pwned.png', join(tmpdir(), 'pwned'), join(tmpdir(), 'pwned.png')].filter((path) => !existsSync(path))

  const png = await readFile(fixtures.png.file)
  const target = await startTarget(png)
  const redirector = await startRedirector(png)
  t.teardown(() => { target.server.close(); redirector.server.close() })

  const settings = { MAX_UPLOAD_BYTES: String(MAX_UPLOAD_BYTES), FETCH_TIMEOUT_MS: '5000', ADMIN_TOKEN, CONFIGS_DIR: await testConfigsDir(t, { outputs: [tinyImage] }) }
  // No private host is allowed here, the target's 127.0.0.1 included (an empty setting is no setting).
  const main = await buildApp(testConfig(runsDir, { ...settings, ALLOWED_FETCH_HOSTS: '' }))
  // This one may reach the redirector by its name, and only by it: every hop after the first is checked.
  const redirects = await buildApp(testConfig(redirectRunsDir, { ...settings, ALLOWED_FETCH_HOSTS: 'localhost' }))
  t.teardown(async () => { await main.close(); await redirects.close() })
  await main.listen({ port: 0, host: '127.0.0.1' })
  const port = (main.server.address() as { port: number }).port

  // The runs the corpus aims at.
  const create = async (app: FastifyInstance, text: string): Promise<string> =>
    (await app.inject({ method: 'POST', url: '/api/runs', payload: { schema: 'dada', execution_mode: 'eco', input_text: text } })).json().run_id
  const runId = await create(main, 'Eine Blume')
  const form = multipartBody([{ name: 'config', value: 'upload' }, { name: 'file', value: png, filename: 'drawing.png', contentType: 'image/png' }])
  const uploaded = await main.inject({ method: 'POST', url: `/api/runs/${runId}/media`, headers: { 'content-type': form.contentType }, payload: form.body })
  t.equal(uploaded.statusCode, 201, 'the aimed-at run has an image')
  // A file in the run's folder that its metadata does not list: never served.
  const unlisted = `unlisted-${randomBytes(12).toString('hex')}`
  await writeFile(join(runsDir, runId, 'notes.txt'), unlisted)
  const otherRunId = await create(main, 'Ein Baum')
  const ctx = {
    runId,
    otherRunId,
    image: png,
    adminToken: ADMIN_TOKEN,
    patchRunId: await create(main, 'Ein Haus'),
    mediaRunId: await create(main, 'Ein Fluss'),
    maxUploadBytes: MAX_UPLOAD_BYTES,
    outputConfig: tinyImage.name,
    depth: FULL ? 1_000_000 : 100_000,
    floodBytes: FULL ? 512 * 1024 * 1024 : 32 * 1024 * 1024,
    mainRunId: await create(main, 'Ein Berg'),
    redirectsRunId: await create(redirects, 'Ein See'),
    targetPort: target.port,
    redirectorPort: redirector.port,
    png
  }
  const corpus: HostileCase[] = [
    ...pathCases(ctx),
    ...jsonCases(ctx),
    ...mediaCases({ runId: ctx.mediaRunId, maxUploadBytes: MAX_UPLOAD_BYTES, floodBytes: ctx.floodBytes }),
    ...ssrfCases(ctx),
    ...malformedHttpCases(),
    ...(FULL ? fuzzCases({ ...ctx, seed: FUZZ_SEED, count: 3000 }) : [])
  ]
  const names = new Set(corpus.map((c) => c.name))
  t.equal(names.size, corpus.length, 'every case has its own name')
  t.ok(corpus.filter((c) => c.fuzz !== true).length >= 300, `at least 300 generated hostile requests (${corpus.length})`)

  const send = async (c: HostileCase): Promise<Answer> => {
    if ('raw' in c.send) {
      const { responses } = await rawExchange(port, c.send.raw, 3000)
      const first = responses[0]
      return first === undefined ? { status: null, body: Buffer.alloc(0) } : { status: first.status, body: Buffer.from(first.body) }
    }
    const res = await (c.app === 'redirects' ? redirects : main).inject(c.send.inject)
    return { status: res.statusCode, body: res.rawPayload }
  }

  const rssBefore = process.memoryUsage().rss
  const leaks = { forbidden: [secret, unlisted, parent, 'root:x:0:0', 'SQLite format 3'] }
  const byStatus = new Map<string, number>()
  const failures = new Map<string, string[]>()
  await mapLimited(corpus, 8, async (c) => {
    const answer = await send(c)
    const status = answer.status === null ? 'closed' : String(answer.status)
    byStatus.set(status, (byStatus.get(status) ?? 0) + 1)
    const problems = problemsOf(c, answer, leaks)
    if (problems.length > 0) failures.set(c.name, problems)
    if (process.env.HOSTILE_LOG !== undefined) await appendFile(process.env.HOSTILE_LOG, `${status} ${JSON.stringify(c.name)} ${problems.join('; ')}\n`)
  })
  const rssGrowth = process.memoryUsage().rss - rssBefore
  // The peak, not only what is left: a flood held whole for a moment would show there.
  const peakGrowth = process.resourceUsage().maxRSS * 1024 - rssBefore

  const unexpected = [...failures].map(([name, problems]) => `${name}: ${problems.join('; ')}`)
  t.same(unexpected, [], 'every hostile request is refused with a 4xx in the contract\'s shape (or, where that is right, served or stored as what it is)')
  t.same(target.paths, [], 'no URL source reached the host itself, directly or through a redirect')
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no body polluted Object.prototype')
  t.ok(peakGrowth < RSS_GROWTH_LIMIT, `memory stayed bounded: RSS rose by ${mib(peakGrowth)} MiB at the most, ${mib(rssGrowth)} MiB are left (limit ${mib(RSS_GROWTH_LIMIT)})`)
  t.equal((await main.inject({ url: '/health' })).statusCode, 200, 'the service still answers')

  // Nothing was written anywhere but into RUNS_DIR, and nothing half-written stays there.
  t.same((await readdir(parent)).sort(), ['redirect-runs', 'runs', 'secret.txt'], 'the folder around RUNS_DIR holds only what the test put there')
  t.equal(await readFile(join(parent, 'secret.txt'), 'utf8'), secret, 'the secret next to RUNS_DIR is untouched')
  t.same(pwned.filter((path) => existsSync(path)), [], 'no /tmp/pwned appeared')
  for (const dir of [runsDir, redirectRunsDir]) t.same(await strayFiles(dir), [], `${dir === runsDir ? 'RUNS_DIR' : 'the redirect app\'s RUNS_DIR'} holds run folders and the index only, each with the files its metadata lists`)

  const statuses = [...byStatus].sort(([a], [b]) => a.localeCompare(b)).map(([status, count]) => `${status}: ${count}`).join(', ')
  const line = `hostile requests: ${corpus.length} tried${FULL ? ` (${corpus.filter((c) => c.fuzz === true).length} seeded mutations, seed ${FUZZ_SEED})` : ''}; answers by status: ${statuses}; ${unexpected.length} unexpected; RSS rose ${mib(peakGrowth)} MiB at the most`
  t.comment(line)
  if (process.env.RELIABILITY_REPORT !== undefined) await appendFile(process.env.RELIABILITY_REPORT, line + '\n')
})

/** What RUNS_DIR holds beyond run folders (whose files are the ones their metadata lists), the index and the thumbnail cache. */
async function strayFiles (runsDir: string): Promise<string[]> {
  const stray: string[] = []
  for (const entry of await readdir(runsDir, { withFileTypes: true })) {
    if (entry.name.startsWith('.index.sqlite') || entry.name === '.thumbnails' || entry.name === '.runstore.lock') continue
    if (!entry.isDirectory() || !isRunId(entry.name)) { stray.push(entry.name); continue }
    const metadata = JSON.parse(await readFile(join(runsDir, entry.name, 'metadata.json'), 'utf8')) as { outputs: Array<{ filename: string }>, transformed_text: string | null }
    const listed = new Set(['metadata.json', 'input_text.txt', 'notes.txt', ...(metadata.transformed_text === null ? [] : ['transformed_text.txt']), ...metadata.outputs.map((o) => o.filename)])
    for (const name of await readdir(join(runsDir, entry.name))) if (!listed.has(name)) stray.push(`${entry.name}/${name}`)
  }
  return stray
}

function mib (bytes: number): number {
  return Math.round(bytes / 1024 / 1024)
}
