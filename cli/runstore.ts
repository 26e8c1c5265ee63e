import { Command, CommanderError } from 'commander'
import { loadConfig } from '../config.js'
import { openStore } from '../runstore.js'
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
    .description('maintenance of a runstore store: checks and counts, safe while the service runs')
    .option('--runs-dir <dir>', 'storage root (default: RUNS_DIR, else ./runs)')
    .exitOverride()
    .configureOutput({ writeOut: (text) => io.stdout.write(text), writeErr: (text) => io.stderr.write(text) })
  const store = () => openStore(loadConfig({ ...io.env, ...(program.opts().runsDir === undefined ? {} : { RUNS_DIR: program.opts().runsDir as string }) }))

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

  try {
    await program.parseAsync(argv, { from: 'user' })
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode
    // A tool's user wants the reason in one line, not a stack.
    const { code, path } = err as NodeJS.ErrnoException
    io.stderr.write(`runstore: ${code === 'ENOENT' && path !== undefined ? `no store at ${path}` : (err as Error).message}\n`)
    return 2
  }
  return exitCode
}

/** A bar that redraws itself on a terminal; a plain line every 10 % otherwise (logs, CI). */
function progress (io: CliIo, what: string): (done: number, total: number) => void {
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
