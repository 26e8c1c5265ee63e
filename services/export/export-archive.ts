import type { Readable } from 'node:stream'
import type { RunMetadata } from '../../schemas/run.js'
import { InvalidExportFormatError, RunNotFoundError } from '../errors.js'
import { MAX_LIST_LIMIT, type RunIndex, type RunIndexEntry, type RunListFilters } from '../storage/index/run-index.js'
import { addRunFolder } from '../storage/run-export.js'
import type { RunStorage } from '../storage/run-storage.js'
import { csvTable } from './csv.js'
import { htmlGallery } from './html.js'
import { pdfReport } from './pdf.js'
import { RUNS_FOLDER, tableColumns, tableRows } from './runs-table.js'
import { xlsxTable } from './xlsx.js'
import { ZipWriter, type ExportSink } from './zip-writer.js'

/** What an export can hold: the run folders, and four views of the same runs. */
export const EXPORT_FORMATS = ['folders', 'csv', 'xlsx', 'html', 'pdf'] as const
export type ExportFormat = typeof EXPORT_FORMATS[number]

/** The file each view is written to, at the top of the archive. */
export const EXPORT_FILES = { csv: 'runs.csv', xlsx: 'runs.xlsx', html: 'index.html', pdf: 'report.pdf' } as const

/**
 * `formats=` as given (a comma list; every format when not given). The
 * gallery shows the media from the run folders, so html brings folders with it.
 */
export function parseExportFormats (value: string | undefined): ExportFormat[] {
  if (value === undefined) return [...EXPORT_FORMATS]
  const names = value.split(',').map((name) => name.trim()).filter((name) => name !== '')
  const unknown = names.filter((name) => !(EXPORT_FORMATS as readonly string[]).includes(name))
  if (unknown.length > 0) throw new InvalidExportFormatError(`unknown ${unknown.map((n) => JSON.stringify(n.slice(0, 40))).join(', ')}; choose from ${EXPORT_FORMATS.join(', ')}`)
  if (names.length === 0) throw new InvalidExportFormatError(`name at least one of ${EXPORT_FORMATS.join(', ')}`)
  const chosen = new Set(names)
  if (chosen.has('html')) chosen.add('folders')
  return EXPORT_FORMATS.filter((format) => chosen.has(format))
}

/** Which runs: those the listing's filters select (GET /api/runs, through the index), or these runs by id. */
export type ExportSelection =
  | { filters: RunListFilters, runIds?: undefined }
  | { runIds: readonly string[], filters?: undefined }

export type ExportRequest = ExportSelection & { formats: readonly ExportFormat[] }

export interface ExportOptions {
  /** when the export was made: the views' date and the entries' time (now when not given) */
  created?: Date
  /** told after each run's folder (or metadata) was taken, with the count so far */
  onRun?: (done: number) => void
}

export interface RunExporterOptions {
  storage: RunStorage
  index: RunIndex
}

/**
 * Bulk exports: the runs the listing's filters select, as one ZIP stream
 * with each run's folder under runs/<run_id>/ and the tables, gallery and
 * report about them. Nothing is held whole: the run folders are written
 * one run ahead of the reader; the views follow in a second pass over the
 * same runs, each row, card or page made when its reader takes it. A
 * failure on the way ends the stream with the error.
 */
export class RunExporter {
  readonly #storage: RunStorage
  readonly #index: RunIndex

  constructor (options: RunExporterOptions) {
    this.#storage = options.storage
    this.#index = options.index
  }

  /** Checks the filters (the index's errors are thrown here, before any byte) and starts the archive. */
  async export (request: ExportRequest, created = new Date(), options: Omit<ExportOptions, 'created'> = {}): Promise<{ filename: string, stream: Readable }> {
    const zip = new ZipWriter()
    await this.writeTo(zip, request, { ...options, created })
    return { filename: exportFilename(created), stream: zip.stream }
  }

  /**
   * The same export into any sink (a ZIP stream, a folder): checks the
   * selection first (throws before any entry), then writes in the
   * background; a failure on the way fails the sink.
   */
  async writeTo (sink: ExportSink, request: ExportRequest, options: ExportOptions = {}): Promise<void> {
    const created = options.created ?? new Date()
    let runs: AsyncIterable<string>
    let subtitle: string
    if (request.runIds !== undefined) {
      runs = (async function * () { yield * request.runIds })()
      subtitle = request.runIds.length === 1 ? `run ${request.runIds[0]!}` : `${request.runIds.length} runs`
    } else {
      const pages = this.#pages(request.filters)
      const first = await pages.next()
      runs = (async function * (): AsyncGenerator<string> {
        if (first.done === true) return
        for (const entry of first.value) yield entry.run_id
        for await (const page of pages) for (const entry of page) yield entry.run_id
      })()
      subtitle = describeFilters(request.filters)
    }
    this.#write(sink, runs, new Set(request.formats), { created, subtitle, onRun: options.onRun })
      .catch((err: unknown) => { sink.fail(err instanceof Error ? err : new Error(String(err))) })
  }

  async * #pages (filters: RunListFilters): AsyncGenerator<RunIndexEntry[]> {
    let cursor: string | undefined
    do {
      const page = await this.#index.list(filters, { limit: MAX_LIST_LIMIT, cursor })
      yield page.runs
      cursor = page.next_cursor ?? undefined
    } while (cursor !== undefined)
  }

  async #write (zip: ExportSink, runs: AsyncIterable<string>, formats: ReadonlySet<ExportFormat>, about: { created: Date, subtitle: string, onRun: ExportOptions['onRun'] }): Promise<void> {
    const selection = new Selection()
    // The archive is kept one run ahead of its reader, so its queue never holds more than two runs' files.
    let ahead: Promise<boolean> = Promise.resolve(true)
    for await (const runId of runs) {
      if (zip.closed) return
      let metadata: RunMetadata
      try {
        if (formats.has('folders')) {
          if (!await ahead) return
          const folder = await addRunFolder(zip, this.#storage, runId, `${RUNS_FOLDER}/`)
          metadata = folder.metadata
          ahead = folder.reached
        } else {
          metadata = await this.#storage.getMetadata(runId)
        }
      } catch (err) {
        // deleted since the index listed it: not part of this export
        if (err instanceof RunNotFoundError) continue
        throw err
      }
      selection.add(metadata)
      about.onRun?.(selection.runs.length)
    }
    const { created, subtitle } = about
    const title = `runstore export ${created.toISOString().slice(0, 10)}`
    const { stageNames } = selection
    const columns = tableColumns(stageNames)
    const views: Record<keyof typeof EXPORT_FILES, { compress: boolean, open: () => Readable }> = {
      csv: { compress: true, open: () => csvTable(tableRows(this.#reread(selection), stageNames), columns) },
      // xlsx and the PDF's streams are compressed already
      xlsx: { compress: false, open: () => xlsxTable(tableRows(this.#reread(selection), stageNames), columns, created) },
      html: { compress: true, open: () => htmlGallery(this.#reread(selection), { title, subtitle }) },
      pdf: { compress: false, open: () => pdfReport(this.#reread(selection), this.#storage, { title, subtitle, created }) }
    }
    for (const [format, view] of Object.entries(views)) {
      if (!formats.has(format as ExportFormat)) continue
      void zip.add(EXPORT_FILES[format as keyof typeof EXPORT_FILES], { mtime: created, compress: view.compress }, async () => view.open())
    }
    zip.end()
  }

  /**
   * The selected runs again, for a view. Outputs are only ever added, so a
   * run that got more since its folder was written is cut back to what the
   * folder holds; a run deleted meanwhile fails the export.
   */
  async * #reread (selection: Selection): AsyncGenerator<RunMetadata> {
    for (const [runId, outputs] of selection.runs) {
      const metadata = await this.#storage.getMetadata(runId)
      yield metadata.outputs.length === outputs ? metadata : { ...metadata, outputs: metadata.outputs.slice(0, outputs) }
    }
  }
}

/** What the first pass keeps of each run: its id and output count, and the stage names seen. */
class Selection {
  readonly runs: Array<[runId: string, outputs: number]> = []
  readonly #stages = new Set<string>()

  add (metadata: RunMetadata): void {
    this.runs.push([metadata.run_id, metadata.outputs.length])
    for (const stage of metadata.stages) this.#stages.add(stage.stage)
  }

  get stageNames (): string[] {
    return [...this.#stages]
  }
}

/** `runstore-export-2025-11-04T14-31-22Z.zip`: sorts by time, safe in every file system. */
export function exportFilename (created: Date): string {
  return `runstore-export-${created.toISOString().slice(0, 19).replace(/:/g, '-')}Z.zip`
}

function describeFilters (filters: RunListFilters): string {
  const given = Object.entries(filters).filter(([, value]) => value !== undefined)
  return given.length === 0 ? 'all runs' : given.map(([key, value]) => `${key}=${String(value)}`).join(', ')
}
