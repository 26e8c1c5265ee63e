import type { FileHandle } from 'node:fs/promises'
import { createRequire } from 'node:module'
import mediaInfoFactory, { type MediaInfo, type MediaInfoResult, type Track } from 'mediainfo.js'

// The package ships its WASM and exports its path; resolving it like a module
// finds it from src and from dist alike. (require.resolve, not
// import.meta.resolve, which blocks on loader hooks such as tap's mocks.)
const WASM_PATH = createRequire(import.meta.url).resolve('mediainfo.js/MediaInfoModule.wasm')

let instance: Promise<MediaInfo<'object'>> | undefined
// One MediaInfo instance analyses one file at a time (it refuses a second
// analysis while one runs), so requests queue up behind each other.
let queue: Promise<unknown> = Promise.resolve()

async function mediaInfo (): Promise<MediaInfo<'object'>> {
  instance ??= mediaInfoFactory({ format: 'object', locateFile: () => WASM_PATH }).catch((err: unknown) => {
    instance = undefined
    throw err
  })
  return await instance
}

/**
 * Container and track facts of an open file, read chunk by chunk through the
 * handle (MediaInfoLib seeks to what it needs, e.g. a trailing moov box), so
 * memory stays at one chunk whatever the file size.
 */
export async function analyzeMediaFile (handle: FileHandle, size: number): Promise<Track[]> {
  const analysis = queue.then(async () => {
    const analyzer = await mediaInfo()
    try {
      const result: MediaInfoResult = await analyzer.analyzeData(size, async (length, offset) => {
        const chunk = Buffer.allocUnsafe(length)
        const { bytesRead } = await handle.read(chunk, 0, length, offset)
        return chunk.subarray(0, bytesRead)
      })
      return result.media?.track ?? []
    } catch (err) {
      // An aborted WASM module stays broken; the next analysis starts a fresh one.
      instance = undefined
      analyzer.close()
      throw err
    }
  })
  queue = analysis.catch(() => {})
  return await analysis
}
