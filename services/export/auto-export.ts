import { randomBytes } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdir, readdir, rename, rm } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { RunNotFoundError } from '../errors.js'
import { fsyncPath, writeFileDurably } from '../storage/blob/durable-fs.js'
import type { RunEvents } from '../storage/run-events.js'
import { isRunId } from '../storage/run-id.js'
import { isFinalStatus, type RunStorage } from '../storage/run-storage.js'
import { parseExportFormats, type RunExporter } from './export-archive.js'
import { FolderWriter } from './folder-writer.js'
import { ZipWriter } from './zip-writer.js'

/** What AUTO_EXPORT_FORMATS may name: the views of an export as loose files, and zip for one archive of the run. */
export const AUTO_EXPORT_FORMATS = ['csv', 'xlsx', 'html', 'pdf', 'zip'] as const
export type AutoExportFormat = typeof AUTO_EXPORT_FORMATS[number]

/** Beside the day folders: a marker per run whose export is not done yet, and the folders being written. */
export const PENDING_FOLDER = '.pending'
const TEMP_FOLDER = '.tmp'

interface Logger {
  info: (details: object, message: string) => void
  warn: (details: object, message: string) => void
  error: (details: object, message: string) => void
}

export interface AutoExportOptions {
  exporter: RunExporter
  storage: RunStorage
  /** EXPORT_DIR */
  dir: string
  formats: readonly AutoExportFormat[]
  logger: Logger
}

/**
 * The design's auto_export_run: when a run ends, the configured formats
 * for that run, made by the exporter of GET /api/exports, are written into
 * EXPORT_DIR/<YYYY-MM-DD of the run>/<run_id>/. Off the request's path: one
 * export at a time in the background. Crash-safe: a marker
 * (.pending/<run_id>) is durable before the export starts and removed once
 * its folder is in place (written under .tmp/, then renamed whole); the
 * next start does every marker again. A failing export is logged and tried
 * again at the next start; it never touches the run.
 */
export class AutoExport {
  readonly #options: AutoExportOptions
  readonly #dir: string
  readonly #queue: string[] = []
  readonly #queued = new Set<string>()
  /** markers being written: close waits for them */
  readonly #noting = new Set<Promise<void>>()
  #running: Promise<void> | null = null
  #idle: Array<() => void> = []
  #closed = false

  constructor (options: AutoExportOptions) {
    this.#options = options
    this.#dir = resolve(options.dir)
  }

  /** Exports every run that ends from now on; returns the unsubscribe function. */
  subscribe (events: RunEvents): () => void {
    return events.subscribe('auto export', async (event) => {
      if (event.type === 'run.updated' && isFinalStatus(event.metadata.status) && !isFinalStatus(event.previous_status)) await this.add(event.run_id)
    })
  }

  /** Notes the run as pending (durably), then queues its export. */
  async add (runId: string): Promise<void> {
    if (this.#closed) return
    const noting = (async () => {
      const pending = join(this.#dir, PENDING_FOLDER)
      await mkdir(pending, { recursive: true })
      await writeFileDurably(join(pending, runId), new Date().toISOString() + '\n')
    })()
    this.#noting.add(noting)
    try {
      await noting
    } finally {
      this.#noting.delete(noting)
    }
    this.#enqueue(runId)
  }

  /**
   * At start: queues the exports a stopped process noted and did not
   * finish, and removes the folders it left half-written. Returns their run ids.
   */
  async resumePending (): Promise<string[]> {
    await rm(join(this.#dir, TEMP_FOLDER), { recursive: true, force: true })
    let names: string[]
    try {
      names = await readdir(join(this.#dir, PENDING_FOLDER))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw err
    }
    const runIds = names.filter((name) => isRunId(name))
    // a marker's own temp file, from a crash while it was written: that run had not begun its export
    for (const name of names.filter((n) => !isRunId(n))) await rm(join(this.#dir, PENDING_FOLDER, name), { force: true })
    for (const runId of runIds) this.#enqueue(runId)
    return runIds
  }

  /** Resolves once no run is being noted and no export is queued or running. */
  async idle (): Promise<void> {
    while (this.#noting.size > 0 || this.#running !== null || this.#queue.length > 0) {
      await Promise.allSettled(this.#noting)
      if (this.#running !== null || this.#queue.length > 0) await new Promise<void>((resolve) => { this.#idle.push(resolve) })
    }
  }

  /** Takes no more runs and waits for the export under way; the queued ones keep their markers for the next start. */
  async close (): Promise<void> {
    this.#closed = true
    await Promise.allSettled(this.#noting)
    const left = this.#queue.splice(0)
    for (const runId of left) this.#queued.delete(runId)
    if (left.length > 0) this.#options.logger.info({ count: left.length }, 'auto exports not done yet are noted for the next start')
    await this.#running
  }

  /**
   * Writes the run's export into EXPORT_DIR/<YYYY-MM-DD>/<run_id>/, whole or
   * not at all (a folder an earlier attempt left there is replaced). Returns the folder.
   */
  async exportRun (runId: string): Promise<string> {
    const { exporter, storage, formats } = this.#options
    const metadata = await storage.getMetadata(runId)
    const created = new Date()
    const temp = join(this.#dir, TEMP_FOLDER, `${metadata.run_id}-${randomBytes(4).toString('hex')}`)
    const views = formats.filter((format) => format !== 'zip')
    try {
      await mkdir(temp, { recursive: true })
      if (views.length > 0) {
        const folder = new FolderWriter(temp)
        await exporter.writeTo(folder, { runIds: [metadata.run_id], formats: parseExportFormats(views.join(',')) }, { created })
        await folder.done
      }
      if (formats.includes('zip')) {
        const zip = new ZipWriter()
        await exporter.writeTo(zip, { runIds: [metadata.run_id], formats: parseExportFormats(['folders', ...views].join(',')) }, { created })
        const file = join(temp, `${metadata.run_id}.zip`)
        await pipeline(zip.stream, createWriteStream(file, { flags: 'wx' }))
        await fsyncPath(file)
      }
      await fsyncPath(temp)
      const day = join(this.#dir, metadata.timestamp.slice(0, 10))
      const target = join(day, metadata.run_id)
      await mkdir(day, { recursive: true })
      await rm(target, { recursive: true, force: true })
      await rename(temp, target)
      await fsyncPath(day)
      await fsyncPath(this.#dir)
      return target
    } catch (err) {
      await rm(temp, { recursive: true, force: true })
      throw err
    }
  }

  #enqueue (runId: string): void {
    if (this.#closed || this.#queued.has(runId)) return
    this.#queued.add(runId)
    this.#queue.push(runId)
    this.#next()
  }

  #next (): void {
    if (this.#running !== null) return
    const runId = this.#queue.shift()
    if (runId === undefined) {
      for (const resolve of this.#idle.splice(0)) resolve()
      return
    }
    this.#running = this.#exportOne(runId).finally(() => {
      this.#running = null
      this.#next()
    })
  }

  async #exportOne (runId: string): Promise<void> {
    const { logger } = this.#options
    const marker = join(this.#dir, PENDING_FOLDER, runId)
    try {
      const folder = await this.exportRun(runId)
      await rm(marker, { force: true })
      logger.info({ run_id: runId, folder }, 'run exported')
    } catch (err) {
      if (err instanceof RunNotFoundError) {
        // deleted before its export: nothing to export, now or later
        await rm(marker, { force: true }).catch(() => {})
        logger.warn({ run_id: runId }, 'a run was deleted before its auto export')
      } else {
        logger.error({ err, run_id: runId }, 'the auto export of a run failed; the next start tries again')
      }
    } finally {
      this.#queued.delete(runId)
    }
  }
}

/** AUTO_EXPORT_FORMATS as a list (the config's pattern has checked the names). */
export function autoExportFormats (value: string): AutoExportFormat[] {
  const names = new Set(value.split(',').map((name) => name.trim()))
  return AUTO_EXPORT_FORMATS.filter((format) => names.has(format))
}
