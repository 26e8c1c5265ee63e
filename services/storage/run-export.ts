import type { Readable } from 'node:stream'
import { ZipFile } from 'yazl'
import type { RunStorage } from './run-storage.js'

/**
 * The run folder as a ZIP stream: one folder named after the run, holding the
 * files its metadata lists (nothing half-written, nothing copied in by hand),
 * read through the blob store one after the other. Media is stored
 * uncompressed: it is compressed already, and deflating it again only costs time.
 */
export async function exportRunZip (storage: RunStorage, runId: string): Promise<{ runId: string, stream: Readable }> {
  const metadata = await storage.getMetadata(runId)
  const zip = new ZipFile()
  const stream = zip.outputStream as Readable
  // A file that cannot be read ends the answer broken, never as a ZIP that looks whole.
  zip.on('error', (err: Error) => { stream.destroy(err) })
  const mtime = new Date(metadata.updated_at)
  for (const filename of storage.listFiles(metadata)) {
    const file = await storage.resolveFile(metadata.run_id, filename)
    const path = `${metadata.run_id}/${filename}`
    if (file.output !== null) {
      // Opened when the ZIP reaches it, so a run with many files holds one open stream at a time.
      zip.addReadStreamLazy(path, { compress: false, mtime, size: file.output.file_size_bytes }, (done) => {
        storage.openFile(file).then((bytes) => { done(null, bytes) }, (err: unknown) => { done(err, undefined as unknown as Readable) })
      })
    } else {
      zip.addBuffer(await storage.readFile(file), path, { mtime })
    }
  }
  zip.end()
  return { runId: metadata.run_id, stream }
}
