import t from 'tap'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { storeWithOldRuns } from '../archive-store.js'
import { build, storedView } from '../helper.js'
import { runFiles } from '../stored-view.js'

const ADMIN_TOKEN = 'a-long-admin-token-for-tests'
const admin = { authorization: `Bearer ${ADMIN_TOKEN}` }
const ARCHIVE = 'runs-2025-03.zip'

t.test('archive over HTTP: listed with archived=, 404 RUN_ARCHIVED, restored byte-identical, pruned', async (t) => {
  const { runsDir, old, recent } = await storeWithOldRuns(t)
  const view = storedView(runsDir)
  const copies = new Map(await Promise.all(old.map(async (id) => [id, await runFiles(view, id)] as const)))
  const app = await build(t, { RUNS_DIR: runsDir, ADMIN_TOKEN, ARCHIVE_AFTER_DAYS: '30', RETENTION_DAYS: '30' })
  const post = async (url: string, payload: unknown) => await app.inject({ method: 'POST', url, headers: admin, payload: payload as object })

  t.same((await app.inject({ url: '/api/archives', headers: admin })).json(), { archive_after_days: 30, retention_days: 30, archives: [] })
  const dry = await post('/api/maintenance/archive', { dry_run: true })
  t.equal(dry.statusCode, 200)
  t.same(dry.json(), { dry_run: true, archive_after_days: 30, archives: [{ archive: ARCHIVE, month: '2025-03', runs: [...old].reverse() }] })
  t.equal((await app.inject({ url: `/api/runs/${old[0]}` })).statusCode, 200, 'a dry run changes nothing')

  t.same((await post('/api/maintenance/archive', {})).json().archives, [{ archive: ARCHIVE, month: '2025-03', runs: [...old].reverse() }])
  const archives = (await app.inject({ url: '/api/archives', headers: admin })).json().archives
  t.match(archives, [{ archive: ARCHIVE, month: '2025-03', part: 1, runs: 2 }])
  t.ok(archives[0].bytes > 0)

  const gone = await app.inject({ url: `/api/runs/${old[0]}` })
  t.equal(gone.statusCode, 404)
  t.match(gone.json(), { code: 'RUN_ARCHIVED', message: new RegExp(`run ${old[0]} is archived in ${ARCHIVE}; restore it`) })
  t.equal((await app.inject({ url: `/api/runs/${old[0]}/export.zip` })).statusCode, 404)
  t.match((await app.inject({ url: '/api/runs/01a23c52-dae1-7001-bf84-5e2be9020f79' })).json(), { code: 'RUN_NOT_FOUND' }, 'a run never stored is not found')
  t.same((await app.inject({ url: '/api/runs' })).json().runs.map((r: { run_id: string }) => r.run_id), [recent])
  t.same((await app.inject({ url: '/api/runs?archived=only' })).json().runs.map((r: { run_id: string, archive: string }) => [r.run_id, r.archive]), old.map((id) => [id, ARCHIVE]))
  t.same((await app.inject({ url: '/api/runs?archived=include' })).json().total, 3)

  const restored = await post('/api/archives/restore', { run_id: old[1] })
  t.equal(restored.statusCode, 200)
  t.same(restored.json(), { restored: [old[1]], skipped: [] })
  t.same(await runFiles(view, old[1]!), copies.get(old[1]!), 'byte-identical')
  t.equal((await app.inject({ url: `/api/runs/${old[1]}` })).json().run_id, old[1])
  t.match((await app.inject({ url: `/api/media/image/${old[1]}` })).statusCode, 200)
  t.match((await post('/api/archives/restore', { run_id: old[1] })).json(), { statusCode: 409, code: 'RUN_EXISTS' })
  t.match((await post('/api/archives/restore', { month: '2024-01' })).json(), { statusCode: 404, code: 'ARCHIVED_RUN_NOT_FOUND' })
  t.match((await post('/api/archives/restore', {})).json(), { statusCode: 400, code: 'INVALID_REQUEST' })
  t.match((await post('/api/archives/restore', { month: '2025-13' })).json(), { statusCode: 400 })
  t.match((await post('/api/maintenance/archive', { dry_run: 'yes' })).json(), { statusCode: 400, code: 'INVALID_REQUEST' })

  const pruneDry = await post('/api/maintenance/prune', { dry_run: true })
  t.match(pruneDry.json(), { dry_run: true, retention_days: 30, archives: [{ archive: ARCHIVE, month: '2025-03', runs: 1 }], trash: { dry_run: true, removed: [] } })
  t.same(await readdir(join(runsDir, 'archive')), [ARCHIVE])
  t.match((await post('/api/maintenance/prune', {})).json(), { dry_run: false, archives: [{ archive: ARCHIVE }] })
  t.same(await readdir(join(runsDir, 'archive')), [])
  t.same((await app.inject({ url: '/api/runs?archived=only' })).json().runs, [])
  t.match((await app.inject({ url: `/api/runs/${old[0]}` })).json(), { code: 'RUN_NOT_FOUND' }, 'pruned for good')
})

t.test('the archive routes are for admins only, and in the OpenAPI document', async (t) => {
  const off = await build(t)
  t.match((await off.inject({ url: '/api/archives' })).json(), { statusCode: 403, code: 'ADMIN_DISABLED' })
  const app = await build(t, { ADMIN_TOKEN })
  for (const [method, url] of [['GET', '/api/archives'], ['POST', '/api/maintenance/archive'], ['POST', '/api/maintenance/prune'], ['POST', '/api/archives/restore']] as const) {
    const res = await app.inject({ method, url, headers: { authorization: 'Bearer wrong' }, ...(method === 'POST' ? { payload: {} } : {}) })
    t.match(res.json(), { statusCode: 401, code: 'ADMIN_UNAUTHORIZED' }, `${method} ${url}`)
  }
  t.same((await app.inject({ method: 'POST', url: '/api/maintenance/archive', headers: admin, payload: {} })).json(), { dry_run: false, archive_after_days: 0, archives: [] }, 'ARCHIVE_AFTER_DAYS=0: nothing')
  const paths = (await app.inject({ url: '/openapi.json' })).json().paths
  t.ok(paths['/api/archives'].get.security)
  t.ok(paths['/api/maintenance/archive'].post)
  t.ok(paths['/api/maintenance/prune'].post)
  t.ok(paths['/api/archives/restore'].post.responses['409'])
})
