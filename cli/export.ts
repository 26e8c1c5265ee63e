import { Option, type Command } from 'commander'
import { createHash, randomBytes } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { rename, rm } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { Config } from '../config.js'
import { openStore } from '../runstore.js'
import { ExportQuery } from '../schemas/exports-api.js'
import { RunExporter } from '../services/export/export-archive.js'
import { checkedExportRequest } from '../services/export/export-query.js'
import { fsyncPath } from '../services/storage/blob/durable-fs.js'
import { MAX_LIST_LIMIT, type RunIndex, type RunListFilters } from '../services/storage/index/run-index.js'
import type { RunStorage } from '../services/storage/run-storage.js'
import type { CliIo } from './runstore.js'

export interface ExportCommandDeps {
  config: () => Config
  /** the run index, for reading only */
  index: (config: Config, storage: RunStorage) => Promise<RunIndex>
  progress: (what: string) => (done: number, total: number) => void
}

// The options are the query of GET /api/exports, named as on the command line; user_id is --user.
const FLAGS: Partial<Record<string, string>> = { user_id: 'user' }
const QUERY_OPTIONS = Object.entries(ExportQuery.properties).map(([key, schema]) => {
  const option = new Option(`--${FLAGS[key] ?? key.replaceAll('_', '-')} <value>`, `${(schema as { description?: string }).description ?? key} (as ${key}= of GET /api/exports)`)
  return { key, option }
})

/**
 * `runstore export --out FILE [filters] [--formats …]`: the ZIP GET
 * /api/exports gives for the same query, written under a temporary name
 * beside FILE and renamed to it once whole, so a failed export leaves no
 * file that looks whole. Reads the index read-only: safe while the service runs.
 */
export function exportCommand (program: Command, io: CliIo, deps: ExportCommandDeps): void {
  const command = program.command('export')
    .description('the runs the filters select as one ZIP, the same as GET /api/exports: run folders, runs.csv, runs.xlsx, index.html, report.pdf; safe while the service runs')
    .requiredOption('--out <file>', 'the ZIP to write (written under a temporary name, renamed to this once whole)')
    .option('--json', 'a JSON summary on stdout, for scripts')
  for (const { option } of QUERY_OPTIONS) command.addOption(option)
  command.action(async (options: Record<string, string | boolean | undefined>) => {
    const request = checkedExportRequest(Object.fromEntries(QUERY_OPTIONS.map(({ key, option }) => [key, options[option.attributeName()] as string | undefined])))
    const settings = deps.config()
    const { storage } = openStore(settings)
    const index = await deps.index(settings, storage)
    const out = resolve(options.out as string)
    const temp = join(dirname(out), `.${basename(out)}.tmp-${randomBytes(6).toString('hex')}`)
    let written: { runs: number, bytes: number, sha256: string }
    try {
      const total = request.filters === undefined ? 0 : await countSelected(index, request.filters)
      const bar = deps.progress('export')
      let runs = 0
      const { stream } = await new RunExporter({ storage, index }).export(request, new Date(), {
        onRun: (done) => { runs = done; if (total > 0) bar(Math.min(done, total), total) }
      })
      const hash = createHash('sha256')
      let bytes = 0
      const counted = new Transform({ transform (chunk: Buffer, _encoding, callback) { hash.update(chunk); bytes += chunk.length; callback(null, chunk) } })
      try {
        await pipeline(stream, counted, createWriteStream(temp, { flags: 'wx' }))
        await fsyncPath(temp)
        await rename(temp, out)
      } catch (err) {
        await rm(temp, { force: true })
        throw new Error(`the export failed, no file was written: ${(err as Error).message}`, { cause: err })
      }
      await fsyncPath(dirname(out))
      written = { runs, bytes, sha256: hash.digest('hex') }
    } finally {
      await index.close()
    }
    if (options.json === true) {
      io.stdout.write(JSON.stringify({ file: out, ...written, formats: request.formats, filters: request.filters }, null, 2) + '\n')
    } else {
      io.stdout.write(`${written.runs} runs exported to ${out} (${written.bytes} bytes, sha256 ${written.sha256})\n`)
    }
  })
}

/** How many runs the filters select, for the progress bar: the index's pages counted (no run is read). */
async function countSelected (index: RunIndex, filters: RunListFilters): Promise<number> {
  let total = 0
  let cursor: string | undefined
  do {
    const page = await index.list(filters, { limit: MAX_LIST_LIMIT, cursor })
    total += page.runs.length
    cursor = page.next_cursor ?? undefined
  } while (cursor !== undefined)
  return total
}
