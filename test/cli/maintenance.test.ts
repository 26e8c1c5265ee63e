import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cli as runstore } from './run-cli.js'
import { createRunstore } from '../../runstore.js'
import { StoreLockedError } from '../../services/storage/store-lock.js'
import { OLD, storeWithOldRuns as store } from '../archive-store.js'
import { testConfig } from '../helper.js'
import { localView, runFiles } from '../stored-view.js'

// The maintenance commands archive after 30 days unless a test says otherwise.
const cli = async (argv: string[], env: Record<string, string> = {}, options: { tty?: boolean } = {}): ReturnType<typeof runstore> =>
  await runstore(argv, { ARCHIVE_AFTER_DAYS: '30', ...env }, options)

const DAY_MS = 24 * 60 * 60 * 1000

t.test('archive, prune and restore from the command line: dry runs change nothing, restore is byte-identical', async (t) => {
  const { runsDir, old, recent } = await store(t)
  const copies = new Map(await Promise.all(old.map(async (id) => [id, await runFiles(localView(runsDir), id)] as const)))

  const dry = await cli(['--runs-dir', runsDir, 'archive', '--dry-run'])
  t.equal(dry.code, 0, dry.stderr)
  t.equal(dry.stdout, 'runs-2025-03.zip: 2 runs\n2 runs would be archived into 1 archive (dry run: nothing changed)\n')
  t.ok((await readdir(runsDir)).includes(old[0]!), 'still live')

  const archived = await cli(['--runs-dir', runsDir, 'archive', '--json'], {}, { tty: true })
  t.equal(archived.code, 0, archived.stderr)
  t.same(JSON.parse(archived.stdout), { dry_run: false, archive_after_days: 30, archives: [{ archive: 'runs-2025-03.zip', month: '2025-03', runs: [...old].reverse() }] })
  t.match(archived.stderr, /\rarchive \[#+\] 2\/2\n$/, 'a bar on a terminal')
  t.same((await readdir(join(runsDir, 'archive'))), ['runs-2025-03.zip'])
  t.notOk((await readdir(runsDir)).includes(old[0]!), 'no longer live')
  t.notOk(await readFile(join(runsDir, '.runstore.lock')).catch(() => null), 'the lock is given back')

  // The service started afterwards lists them as archived, from the index the command kept.
  const runstore = await createRunstore(testConfig(runsDir))
  await runstore.startup
  t.same((await runstore.index.list({ archived: 'include' })).runs.map((r) => [r.run_id, r.archive]), [[recent, null], ...old.map((id) => [id, 'runs-2025-03.zip'])])
  await runstore.close()

  const restored = await cli(['--runs-dir', runsDir, 'restore', old[1]!])
  t.equal(restored.code, 0, restored.stderr)
  t.equal(restored.stdout, `${old[1]}: restored\n1 runs restored; 0 skipped\n`)
  t.same(await runFiles(localView(runsDir), old[1]!), copies.get(old[1]!), 'byte-identical')
  const again = await cli(['--runs-dir', runsDir, 'restore', old[1]!])
  t.same([again.code, again.stderr], [1, `runstore: a run ${old[1]} exists already; nothing was restored over it\n`])
  const month = await cli(['--runs-dir', runsDir, 'restore', '2025-03', '--json'])
  t.same(JSON.parse(month.stdout), { restored: [old[0]], skipped: [] })
  t.same(await runFiles(localView(runsDir), old[0]!), copies.get(old[0]!), 'byte-identical')
  t.same((await cli(['--runs-dir', runsDir, 'restore', '2025-03'])).code, 1, 'nothing left of that month')

  await cli(['--runs-dir', runsDir, 'archive'])
  const pruneDry = await cli(['--runs-dir', runsDir, 'prune', '--dry-run'], { RETENTION_DAYS: '30' })
  t.equal(pruneDry.stdout, 'runs-2025-03.zip: 2 runs would remove\n1 archives and 0 trashed runs would remove (dry run: nothing changed)\n')
  t.same((await readdir(join(runsDir, 'archive'))), ['runs-2025-03.zip'])
  const kept = await cli(['--runs-dir', runsDir, 'prune'])
  t.match(kept.stdout, /0 archives and 0 trashed runs removed \(RETENTION_DAYS is 0: archives are kept\)\n$/)
  const pruned = await cli(['--runs-dir', runsDir, 'prune', '--json'], { RETENTION_DAYS: '30' })
  t.match(JSON.parse(pruned.stdout), { dry_run: false, retention_days: 30, archives: [{ archive: 'runs-2025-03.zip', runs: 2 }], trash: { removed: [] } })
  t.same((await readdir(join(runsDir, 'archive'))), [])
  const off = await cli(['--runs-dir', runsDir, 'archive'], { ARCHIVE_AFTER_DAYS: '0' })
  t.equal(off.stdout, 'ARCHIVE_AFTER_DAYS is 0: nothing is archived\n')
  t.ok(Date.now() - OLD.getTime() > 30 * DAY_MS)
})

t.test('while another process holds the store lock, writing commands exit 3 and reading ones work', async (t) => {
  const { runsDir, old } = await store(t)
  const loader = process.execArgv.filter((arg) => arg.includes('@tapjs/typescript'))
  const holder = spawn(process.execPath, [...loader, fileURLToPath(new URL('./hold-store-lock.ts', import.meta.url)), runsDir], { stdio: ['pipe', 'pipe', 'inherit'] })
  t.teardown(() => { holder.kill() })
  await once(holder.stdout!, 'data')

  for (const argv of [['archive'], ['prune', '--dry-run'], ['restore', '2025-03'], ['reindex']]) {
    const refused = await cli(['--runs-dir', runsDir, ...argv])
    t.equal(refused.code, 3, argv.join(' '))
    t.match(refused.stderr, new RegExp(`^runstore: the store is in use by server \\(pid ${holder.pid} on .*\\): stop it first`))
  }
  t.ok((await readdir(runsDir)).includes(old[0]!), 'nothing was archived')
  t.equal((await cli(['--runs-dir', runsDir, 'verify'])).code, 0, 'verify reads only')
  t.equal((await cli(['--runs-dir', runsDir, 'stats'])).code, 0, 'stats reads only')
  await t.rejects(createRunstore(testConfig(runsDir)), StoreLockedError, 'a second service on the same store does not start')

  holder.stdin!.end()
  await once(holder, 'exit')
  t.equal((await cli(['--runs-dir', runsDir, 'archive'])).code, 0, 'given back: the command runs')
})

t.test('a lock whose process is gone is taken over', async (t) => {
  const { runsDir } = await store(t)
  const gone = spawn(process.execPath, ['-e', ''])
  await once(gone, 'exit')
  await writeFile(join(runsDir, '.runstore.lock'), JSON.stringify({ pid: gone.pid, hostname: (await import('node:os')).hostname(), started_at: '2026-01-01T00:00:00.000Z', role: 'server' }))
  const archived = await cli(['--runs-dir', runsDir, 'archive', '--dry-run'])
  t.equal(archived.code, 0, archived.stderr)
  await writeFile(join(runsDir, '.runstore.lock'), 'not json')
  t.equal((await cli(['--runs-dir', runsDir, 'prune', '--dry-run'])).code, 0, 'an unreadable lock counts as stale')
  await writeFile(join(runsDir, '.runstore.lock'), JSON.stringify({ pid: 1, hostname: 'another-host', started_at: '2026-01-01T00:00:00.000Z', role: 'server' }))
  t.equal((await cli(['--runs-dir', runsDir, 'prune', '--dry-run'])).code, 3, 'a holder on another host is never taken for dead')
})

t.test('--help for the maintenance commands', async (t) => {
  const help = await cli(['--help'])
  for (const command of ['archive', 'prune', 'restore']) t.match(help.stdout, command)
  t.match((await cli(['archive', '--help'])).stdout, /--dry-run[\s\S]*--json/)
  t.match((await cli(['prune', '--help'])).stdout, /--dry-run[\s\S]*--json/)
  t.match((await cli(['restore', '--help'])).stdout, /<run_id\|month>/)
})
