import type { Readable } from 'node:stream'
import type { RunMetadata } from '../../schemas/run.js'
import { ZipWriter, type ExportSink } from '../export/zip-writer.js'
import { METADATA_FILE, type RunStorage } from './run-storage.js'

/**
 * The run folder as a ZIP stream: one folder named after the run, holding the
 * files its metadata lists (nothing half-written, nothing copied in by hand).
 */
export async function exportRunZip (storage: RunStorage, runId: string): Promise<{ runId: string, stream: Readable }> {
  const zip = new ZipWriter()
  const { metadata } = await addRunFolder(zip, storage, runId, '')
  zip.end()
  return { runId: metadata.run_id, stream: zip.stream }
}

/**
 * Adds the files of a run, as its metadata lists them, under
 * `<prefix><run_id>/`, read through the blob store one after the other when
 * the archive reaches them. The listing is the metadata.json that goes into
 * the archive, so the two agree while the run goes on changing. Media is
 * stored uncompressed: it is compressed already, and deflating it again only
 * costs time. `reached` settles once the archive has begun the run's files.
 */
export async function addRunFolder (zip: ExportSink, storage: RunStorage, runId: string, prefix: string): Promise<{ metadata: RunMetadata, reached: Promise<boolean> }> {
  const metadataFile = await storage.resolveFile(runId, METADATA_FILE)
  const bytes = await storage.readFile(metadataFile)
  const metadata = JSON.parse(bytes.toString('utf8')) as RunMetadata
  const mtime = new Date(metadata.updated_at)
  const folder = `${prefix}${metadata.run_id}/`
  const reached = zip.addBuffer(folder + METADATA_FILE, { mtime, compress: true }, bytes)
  for (const filename of storage.listFiles(metadata)) {
    if (filename === METADATA_FILE) continue
    const file = await storage.resolveFile(metadata.run_id, filename)
    const media = metadata.outputs.find((o) => o.filename === filename)
    const options = media === undefined ? { mtime, compress: true } : { mtime, compress: false, size: media.file_size_bytes }
    void zip.add(folder + filename, options, async () => await storage.openFile(file))
  }
  return { metadata, reached }
}
