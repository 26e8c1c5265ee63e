import { Command, CommanderError } from 'commander'
import { loadConfig, type Config } from '../config.js'
import { indexPathOf, indexSettingsOf, indexSource, openMaintenanceStore, openStore, type MaintenanceStore } from '../runstore.js'
import { isCodedError } from '../services/errors.js'
import type { RunStorage } from '../services/storage/run-storage.js'
import { StoreLock, StoreLockedError } from '../services/storage/store-lock.js'
import { clearConfiguredIndex, openConfiguredIndex } from '../services/storage/index/open-index.js'
import type { RunIndex } from '../services/storage/index/run-index.js'
import { SqliteRunIndex } from '../services/storage/index/sqlite.js'
import { exportCommand } from './export.js'
import { storeStats } from '../services/storage/store-stats.js'
import { verifyStore } from '../services/storage/verify-store.js'

export interface CliIo {
  stdout: { write: (text: string) => unknown }
  stderr: { write: (text: string) => unknown, isTTY?: boolean }
  env: NodeJS.ProcessEnv
}

/**
 * `runstore <command>`: maintenance on the same services as the server,
 * without starting it. Settings come from the same environment variables
 * (RUNS_DIR, …); --runs-dir overrides RUNS_DIR. Returns the exit code.
 */
export async function runCli (argv: string[], io: CliIo): Promise<number> {
  let exitCode = 0
  const program = new Command('runstore')
    .description('maintenance of a runstore store: verify and stats read only and are safe while the service runs; archive, prune, restore and reindex write and are refused (exit 3) while it holds the store lock')
    .option('--runs-dir <dir>', 'storage root (default: RUNS_DIR, else ./runs)')
    .exitOverride()
    .configureOutput({ writeOut: (text) => io.stdout.write(text), writeErr: (text) => io.stderr.write(text) })
  const config = () => loadConfig({ ...io.env, ...(program.opts().runsDir === undefined ? {} : { RUNS_DIR: program.opts().runsDir as string }) })
  const store = () => openStore(config())
  // Commands that write take the store lock: never behind a running service's back.
  const writing = async <T>(role: string, work: (store: MaintenanceStore) => Promise<T>): Promise<T> => {
    const opened = await openMaintenanceStore(config(), role)
    try {
      return await work(opened)
    } finally {
      await opened.close()
    }
  }
  const print = (json: boolean | undefined, document: unknown, lines: string[]): void => {
    io.stdout.write(json === true ? JSON.stringify(document, null, 2) + '\n' : lines.map((l) => l + '\n').join(''))
  }

  program.command('verify')
    .description('every metadata.json valid, every listed file stored with its size and sha256, every stored file listed; exits 1 naming each problem')
    .option('--json', 'one JSON document on stdout, for scripts')
    .action(async (options: { json?: boolean }) => {
      const report = await verifyStore(store().blobs, { onRun: progress(io, 'verify') })
      if (options.json === true) {
        io.stdout.write(JSON.stringify(report, null, 2) + '\n')
      } else {
        for (const p of report.problems) io.stdout.write(`${p.run_id}${p.file === undefined ? '' : '/' + p.file}: ${p.kind}: ${p.message}\n`)
        io.stdout.write(`${report.runs} runs, ${report.files} files, ${report.bytes} bytes checked; ${report.problems.length} problem${report.problems.length === 1 ? '' : 's'}\n`)
      }
      if (report.problems.length > 0) exitCode = 1
    })

  program.command('stats')
    .description('runs by month, status and pipeline, outputs by backend, and the bytes they take')
    .option('--json', 'one JSON document on stdout, for scripts')
    .action(async (options: { json?: boolean }) => {
      const stats = await storeStats(store().storage, { onRun: progress(io, 'stats') })
      if (options.json === true) { io.stdout.write(JSON.stringify(stats, null, 2) + '\n'); return }
      io.stdout.write(`${stats.runs} runs, ${stats.outputs} outputs, ${stats.bytes} bytes${stats.unreadable > 0 ? `, ${stats.unreadable} unreadable` : ''}\n`)
      for (const [title, table] of [['month', stats.by_month], ['status', stats.by_status], ['pipeline', stats.by_pipeline], ['backend', stats.by_backend]] as const) {
        io.stdout.write(`\nby ${title}:\n`)
        for (const [key, n] of Object.entries(table).sort(([a], [b]) => a.localeCompare(b))) io.stdout.write(`  ${key.padEnd(20)} ${n}\n`)
      }
    })

  exportCommand(program, io, {
    config,
    index: async (settings, storage) => await indexForReading(settings, storage, io),
    progress: (what) => progress(io, what)
  })

  program.command('reindex')
    .description('builds the run index again from the run folders and the archives (after the index was damaged, or run folders were edited by hand). Refused (exit 3) while the service runs')
    .option('--json', 'one JSON document on stdout, for scripts')
    .action(async (options: { json?: boolean }) => {
      const settings = config()
      const { storage, archives } = openStore(settings)
      await storage.listRunIds() // the store must exist before the old index goes
      const lock = await StoreLock.acquire(settings.RUNS_DIR, 'runstore reindex')
      try {
        const where = indexSettingsOf(settings)
        await clearConfiguredIndex(where)
        const { index, where: path } = await openConfiguredIndex(where, storage)
        const bar = progress(io, 'reindex')
        let report
        try {
          report = await index.catchUp(indexSource({ storage, archives }), { onProgress: (p) => { if (p.stored_runs !== null && p.stored_runs > 0) bar(Math.min(p.indexed_runs, p.stored_runs), p.stored_runs) } })
        } finally {
          await index.close()
        }
        if (options.json === true) {
          io.stdout.write(JSON.stringify({ index: path, runs: report.added, skipped: report.skipped }, null, 2) + '\n')
        } else {
          for (const s of report.skipped) io.stdout.write(`${s.run_id}: skipped: ${s.reason}\n`)
          io.stdout.write(`${report.added} runs indexed into ${path}; ${report.skipped.length} skipped\n`)
        }
        if (report.skipped.length > 0) exitCode = 1
      } finally {
        await lock.release()
      }
    })

  program.command('archive')
    .description('packs finished runs older than ARCHIVE_AFTER_DAYS into monthly ZIP archives (ARCHIVE_DIR) with a manifest of every file and its sha256; they leave the live store. Refused (exit 3) while the service runs: use POST /api/maintenance/archive then')
    .option('--dry-run', 'only say which runs would go into which archive')
    .option('--json', 'one JSON document on stdout, for scripts')
    .action(async (options: { dryRun?: boolean, json?: boolean }) => {
      const report = await writing('runstore archive', async ({ archives }) => await archives.archive({ dryRun: options.dryRun === true, onProgress: progress(io, 'archive') }))
      const runs = report.archives.reduce((n, a) => n + a.runs.length, 0)
      print(options.json, report, report.archive_after_days === 0
        ? ['ARCHIVE_AFTER_DAYS is 0: nothing is archived']
        : [...report.archives.map((a) => `${a.archive}: ${a.runs.length} run${a.runs.length === 1 ? '' : 's'}`),
            `${runs} runs ${report.dry_run ? 'would be archived' : 'archived'} into ${report.archives.length} archive${report.archives.length === 1 ? '' : 's'}${report.dry_run ? ' (dry run: nothing changed)' : ''}`])
    })

  program.command('prune')
    .description('removes archives whose month ended more than RETENTION_DAYS ago and empties the trash of runs deleted more than TRASH_DAYS ago, for good. Refused (exit 3) while the service runs')
    .option('--dry-run', 'only say what would be removed')
    .option('--json', 'one JSON document on stdout, for scripts')
    .action(async (options: { dryRun?: boolean, json?: boolean }) => {
      const report = await writing('runstore prune', async ({ archives }) => await archives.prune({ dryRun: options.dryRun === true }))
      const verb = report.dry_run ? 'would remove' : 'removed'
      print(options.json, report, [
        ...report.archives.map((a) => `${a.archive}: ${a.runs} runs ${verb}`),
        ...report.trash.removed.map((r) => `trash ${r.run_id} (deleted ${r.deleted_at}) ${verb}`),
        `${report.archives.length} archives and ${report.trash.removed.length} trashed runs ${verb}${report.retention_days === 0 ? ' (RETENTION_DAYS is 0: archives are kept)' : ''}${report.dry_run ? ' (dry run: nothing changed)' : ''}`
      ])
    })

  program.command('restore')
    .description('brings an archived run (a run id) or every archived run of a month (YYYY-MM) back into the live store, each file checked against the sha256 in its archive\'s manifest. Refused (exit 3) while the service runs: use POST /api/archives/restore then')
    .argument('<run_id|month>', 'a run id, or a month as YYYY-MM')
    .option('--json', 'one JSON document on stdout, for scripts')
    .action(async (target: string, options: { json?: boolean }) => {
      const report = await writing('runstore restore', async ({ archives }) => await archives.restore(target))
      print(options.json, report, [
        ...report.restored.map((id) => `${id}: restored`),
        ...report.skipped.map((s) => `${s.run_id}: skipped: ${s.reason}`),
        `${report.restored.length} runs restored; ${report.skipped.length} skipped`
      ])
    })

  try {
    await program.parseAsync(argv, { from: 'user' })
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode
    if (err instanceof StoreLockedError) {
      io.stderr.write(`runstore: ${err.message}\n`)
      return 3
    }
    if (isCodedError(err)) {
      io.stderr.write(`runstore: ${err.message}\n`)
      // Bad input is a usage error, like commander's own; anything else was refused with a reason.
      return err.statusCode === 400 ? 2 : 1
    }
    // A tool's user wants the reason in one line, not a stack.
    const { code, path } = err as NodeJS.ErrnoException
    io.stderr.write(`runstore: ${code === 'ENOENT' && path !== undefined ? `no store at ${path}` : (err as Error).message}\n`)
    return 2
  }
  return exitCode
}

/**
 * The run index for a command that only reads, while the service may run:
 * the service's index file, opened read-only (nothing in it changes, its
 * meta included); when that cannot list every run now (missing, being
 * built, damaged), an index built in memory from the run folders.
 */
async function indexForReading (config: Config, storage: RunStorage, io: CliIo): Promise<RunIndex> {
  const path = indexPathOf(config)
  const opened = SqliteRunIndex.openReadOnly(path)
  if ('index' in opened) return opened.index
  io.stderr.write(`runstore: ${opened.unusable} (${path}); the runs are read from their folders instead\n`)
  const index = await SqliteRunIndex.open({ path: null })
  const bar = progress(io, 'index')
  try {
    await index.catchUp(storage, { onProgress: (p) => { if (p.stored_runs !== null && p.stored_runs > 0) bar(Math.min(p.indexed_runs, p.stored_runs), p.stored_runs) } })
  } catch (err) {
    await index.close()
    throw err
  }
  return index
}

/** A bar that redraws itself on a terminal; a plain line every 10 % otherwise (logs, CI). */
export function progress (io: CliIo, what: string): (done: number, total: number) => void {
  let lastTenth = -1
  return (done, total) => {
    if (io.stderr.isTTY === true) {
      const width = 30
      const filled = Math.round(width * done / total)
      io.stderr.write(`\r${what} [${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${done}/${total}${done === total ? '\n' : ''}`)
      return
    }
    const tenth = Math.floor(10 * done / total)
    if (tenth > lastTenth) {
      lastTenth = tenth
      io.stderr.write(`${what}: ${done}/${total} runs\n`)
    }
  }
}
