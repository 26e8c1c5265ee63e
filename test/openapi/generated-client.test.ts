// Clients that just work: a typed client generated from /openapi.json with
// openapi-typescript 7 and driven with openapi-fetch, as a research script
// would. openapi-client/client.ts is type-checked against the generated types
// (TypeScript 5.9, openapi-client's own), compiled, and run against the service.
import t from 'tap'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { fixtures } from '../fixtures/media.js'
import { build } from '../helper.js'
import { unzip } from '../unzip.js'
import { CLIENT_DIR, compileClient, generateTypes, installClientTools } from './generate-client.js'

const ADMIN_TOKEN = 'openapi-client-admin-token'
// An install on a fresh clone and a compiler run over a few thousand generated lines take longer than a route test.
t.setTimeout(600_000)

await installClientTools()
const app = await build(t, { ADMIN_TOKEN })
const baseUrl = await app.listen({ host: '127.0.0.1', port: 0 })

t.test('the generated types describe binary, ranged and streamed answers', async (t) => {
  const source = await generateTypes((await app.inject({ url: '/openapi.json' })).json())
  t.match(source, /"image\/\*": Blob;/, 'media bytes are binary')
  t.match(source, /"application\/zip": Blob;/, 'ZIPs too')
  t.match(source, /206: \{/, 'a ranged answer is declared')
  t.match(source, /"text\/event-stream": string;/, 'the event stream is text')
  t.match(source, /reason: "not_configured" \| "down" \| "queue_full";/, 'a skipped output\'s reason is one of three words')
  const compiled = await compileClient()
  t.ok(compiled.ok, `openapi-client/client.ts type-checks against the generated types:\n${compiled.report}`)
})

t.test('create run → upload → read media (whole and a range) → list with filters → export, through the generated client', async (t) => {
  const image = await readFile(fixtures.png.file)
  const { driveRunstore } = await import(pathToFileURL(join(CLIENT_DIR, 'dist', 'client.js')).href)
  const seen = await driveRunstore({ baseUrl, adminToken: ADMIN_TOKEN, image: new Uint8Array(image), user: 'CLIENT_T' })

  t.match(seen.uploaded, { status: 201, type: 'image', fileSize: image.length })
  t.equal(seen.media.status, 200)
  t.equal(seen.media.contentType, 'image/png')
  t.ok(Buffer.from(seen.media.bytes).equals(image), 'the bytes read back are the bytes uploaded')
  t.equal(seen.range.status, 206)
  t.equal(seen.range.contentRange, `bytes 8-23/${image.length}`)
  t.ok(Buffer.from(seen.range.bytes).equals(image.subarray(8, 24)), 'the range is those bytes')

  t.equal(seen.listed.status, 200)
  t.same(seen.listed.runIds, [seen.runId], 'the filters found the uploaded run only (the executes that follow had not run yet)')

  t.equal(seen.runZip.status, 200)
  t.equal(seen.runZip.contentType, 'application/zip')
  const runFiles = await unzip(Buffer.from(seen.runZip.bytes))
  t.ok([...runFiles.entries()].some(([name, bytes]) => name.endsWith('/output_image.png') && bytes.equals(image)), 'the run ZIP holds the upload')
  t.equal(seen.export.status, 200)
  t.equal(seen.export.contentType, 'application/zip')
  const exported = await unzip(Buffer.from(seen.export.bytes))
  t.ok(exported.get(`runs/${String(seen.runId)}/output_image.png`)?.equals(image), 'the export holds the run\'s folder')
  t.match(exported.get('runs.csv')?.toString('utf8'), new RegExp(String(seen.runId)))

  t.equal(seen.executed.status, 200)
  t.same(seen.executed.chosen, ['builtin_image'], 'fast without a cloud key: the builtin generator, as the answer says')
  t.match(seen.executed.mediaUrl, new RegExp(`^/api/media/image/${String(seen.executed.runId)}/0$`))
  t.equal(seen.events.status, 200)
  t.match(seen.events.contentType, /^text\/event-stream/)
  t.match(seen.events.text, /^event: run_created\n/)
  t.match(seen.events.text, /event: completed\n/)
})
