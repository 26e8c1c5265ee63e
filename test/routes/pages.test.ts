import t from 'tap'
import { readFile } from 'node:fs/promises'
import { brotliDecompressSync, gunzipSync } from 'node:zlib'
import { build } from '../helper.js'
import { findPublicDir } from '../../routes/pages.js'
import { fixtures } from '../fixtures/media.js'

const PUBLIC = new URL('../../public/', import.meta.url)

t.test('the workshop page and the gallery are HTML, revalidated by ETag', async (t) => {
  const app = await build(t)
  const pages: Array<[string, string]> = [['/', 'index.html'], ['/gallery', 'gallery.html']]
  for (const [url, file] of pages) {
    const res = await app.inject({ url })
    t.equal(res.statusCode, 200, url)
    t.equal(res.headers['content-type'], 'text/html; charset=utf-8')
    t.equal(res.headers['cache-control'], 'no-cache')
    t.equal(res.body, await readFile(new URL(file, PUBLIC), 'utf8'))
    const again = await app.inject({ url, headers: { 'if-none-match': String(res.headers.etag) } })
    t.equal(again.statusCode, 304, `${url} unchanged`)
    const head = await app.inject({ method: 'HEAD', url })
    t.equal(head.statusCode, 200)
  }
  const openapi = (await app.inject({ url: '/openapi.json' })).json()
  t.notOk('/' in openapi.paths || '/gallery' in openapi.paths || '/assets/*' in openapi.paths, 'pages are not part of the API description')
})

t.test('assets are cached for a while and compressed when the client takes it', async (t) => {
  const app = await build(t)
  const source = await readFile(new URL('assets/gallery.js', PUBLIC))
  const plain = await app.inject({ url: '/assets/gallery.js' })
  t.equal(plain.statusCode, 200)
  t.equal(plain.headers['content-type'], 'application/javascript; charset=utf-8')
  t.equal(plain.headers['cache-control'], 'public, max-age=300, must-revalidate')
  t.equal(plain.headers['x-content-type-options'], 'nosniff')
  t.equal(plain.headers['content-encoding'], undefined)
  t.same(plain.rawPayload, source)
  t.equal(plain.headers['accept-ranges'], undefined, 'no ranges of files that may be sent compressed')

  const br = await app.inject({ url: '/assets/gallery.js', headers: { 'accept-encoding': 'br, gzip' } })
  t.equal(br.headers['content-encoding'], 'br')
  t.match(br.headers.vary, /accept-encoding/i)
  t.same(brotliDecompressSync(br.rawPayload), source)
  t.ok(br.rawPayload.length < source.length / 2, `${br.rawPayload.length} of ${source.length} bytes`)
  const gzip = await app.inject({ url: '/assets/style.css', headers: { 'accept-encoding': 'gzip' } })
  t.equal(gzip.headers['content-encoding'], 'gzip')
  t.same(gunzipSync(gzip.rawPayload), await readFile(new URL('assets/style.css', PUBLIC)))

  t.equal((await app.inject({ url: '/assets/nothing.js' })).statusCode, 404)
  for (const url of ['/assets/../index.html', '/assets/%2e%2e/%2e%2e/package.json', '/assets/..%2f..%2fpackage.json']) {
    const escape = await app.inject({ url })
    t.equal(escape.statusCode, 404, url)
    t.match(escape.json(), { statusCode: 404, error: 'Not Found', code: /^(ASSET|ROUTE)_NOT_FOUND$/ }, 'in the contract\'s shape')
  }
})

t.test('media, ZIPs, JSON and event streams are never compressed: their bytes, lengths and ranges stay', async (t) => {
  const app = await build(t)
  const gz = { 'accept-encoding': 'gzip, br' }
  const run = (await app.inject({ method: 'POST', url: '/api/runs', payload: { schema: 'dada', execution_mode: 'eco', input_text: 'Ein Klang' } })).json()
  const wav = await readFile(fixtures.wav.file)
  await app.inject({ method: 'POST', url: `/api/runs/${run.run_id}/media`, payload: { source: 'data', data: wav.toString('base64'), config: 'upload' } })

  const full = await app.inject({ url: `/api/media/audio/${run.run_id}`, headers: gz })
  t.equal(full.headers['content-encoding'], undefined)
  t.equal(Number(full.headers['content-length']), wav.length)
  t.same(full.rawPayload, wav)
  const part = await app.inject({ url: `/api/media/audio/${run.run_id}`, headers: { ...gz, range: 'bytes=10-99' } })
  t.equal(part.statusCode, 206)
  t.equal(part.headers['content-range'], `bytes 10-99/${wav.length}`)
  t.same(part.rawPayload, wav.subarray(10, 100))
  const cached = await app.inject({ url: `/api/media/audio/${run.run_id}`, headers: { ...gz, 'if-none-match': String(full.headers.etag) } })
  t.equal(cached.statusCode, 304)

  const zip = await app.inject({ url: `/api/runs/${run.run_id}/export.zip`, headers: gz })
  t.equal(zip.headers['content-encoding'], undefined)
  t.equal(zip.rawPayload.subarray(0, 2).toString(), 'PK')
  const listing = await app.inject({ url: '/api/runs', headers: gz })
  t.equal(listing.headers['content-encoding'], undefined)
  const stream = await app.inject({ method: 'POST', url: '/api/schema/pipeline/execute', headers: { ...gz, accept: 'text/event-stream' }, payload: { schema: 'dada', input_text: 'ein Messer' } })
  t.equal(stream.headers['content-encoding'], undefined)
  t.match(stream.body, /^event: run_created\n/)
})

t.test('the pages are found from the sources and from dist/, and missing ones stop the start', async (t) => {
  t.equal(findPublicDir(), new URL('../../public/', import.meta.url).pathname)
  t.equal(findPublicDir(['../nowhere/', '../public/']), new URL('../../public/', import.meta.url).pathname, 'the first folder that has the pages')
  t.throws(() => findPublicDir(['../nowhere/']), /the workshop pages are missing: no index.html in \.\.\/nowhere\//)
})
