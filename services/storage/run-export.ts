import type { Readable } from 'node:stream'
import { ZipFile } from 'yazl'
import type { RunStorage } from './run-storage.js'

/**
 * The run folder as a ZIP stream: one folder named after the run, holding the
 * files its metadata lists (nothing half-written, nothing copied in by hand).
 * Media is stored uncompressed: it is compressed already, and deflating it
 * again only costs time.
 */
export async function exportRunZip (storage: RunStorage, runId: string): Promise<{ runId: string, stream: Readable }> {
  const metadata = await storage.getMetadata(runId)
  const zip = new ZipFile()
  const media = new Set(metadata.outputs.map((o) => o.filename))
  const mtime = new Date(metadata.updated_at)
  for (const filename of storage.listFiles(metadata)) {
    const file = await storage.resolveFile(metadata.run_id, filename)
    const path = `${metadata.run_id}/${filename}`
    if (media.has(filename)) zip.addFile(file.path, path, { compress: false, mtime })
    else zip.addBuffer(await storage.readRunFile(file), path, { mtime })
  }
  zip.end()
  return { runId: metadata.run_id, stream: zip.outputStream as Readable }
}
