import type { RunStorage } from './run-storage.js'

export interface StoreStats {
  runs: number
  outputs: number
  /** bytes of every file the runs list (metadata, texts, media) */
  bytes: number
  /** runs by the month of their timestamp (YYYY-MM, UTC) */
  by_month: Record<string, number>
  by_status: Record<string, number>
  /** runs by pipeline (schema) */
  by_pipeline: Record<string, number>
  /** outputs by backend */
  by_backend: Record<string, number>
  /** runs whose metadata.json could not be read */
  unreadable: number
}

/** Counts of a store, read from every run's metadata: what a lab reports at the end of a term. */
export async function storeStats (storage: RunStorage, options: { onRun?: (done: number, total: number) => void } = {}): Promise<StoreStats> {
  const stats: StoreStats = { runs: 0, outputs: 0, bytes: 0, by_month: {}, by_status: {}, by_pipeline: {}, by_backend: {}, unreadable: 0 }
  const count = (table: Record<string, number>, key: string): void => { table[key] = (table[key] ?? 0) + 1 }
  const runIds = await storage.listRunIds()
  for (const [i, runId] of runIds.entries()) {
    options.onRun?.(i + 1, runIds.length)
    let metadata
    try {
      metadata = await storage.getMetadata(runId)
    } catch {
      stats.unreadable++
      continue
    }
    stats.runs++
    count(stats.by_month, metadata.timestamp.slice(0, 7))
    count(stats.by_status, metadata.status)
    count(stats.by_pipeline, metadata.schema)
    for (const output of metadata.outputs) {
      stats.outputs++
      count(stats.by_backend, output.backend)
    }
    for (const name of storage.listFiles(metadata)) stats.bytes += (await storage.blobs.stat(runId, name))?.size ?? 0
  }
  return stats
}
