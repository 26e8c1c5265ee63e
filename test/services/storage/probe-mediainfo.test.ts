import t from 'tap'
import { open } from 'node:fs/promises'
import mediaInfoFactory from 'mediainfo.js'
import { analyzeMediaFile } from '../../../services/storage/probe-mediainfo.js'
import { mediaFixtures } from '../../fixtures/media.js'

async function tracksOf (path: string): Promise<Array<Record<string, unknown>>> {
  const handle = await open(path, 'r')
  try {
    return await analyzeMediaFile(handle, (await handle.stat()).size) as unknown as Array<Record<string, unknown>>
  } finally {
    await handle.close()
  }
}

t.test('reads the tracks of a file through its handle', async (t) => {
  t.match(await tracksOf(mediaFixtures.mkv.file), [
    { '@type': 'General', Format: 'Matroska' },
    { '@type': 'Video', Format: 'VP9', Width: 48, Height: 32 },
    { '@type': 'Audio', Format: 'Opus' }
  ])
})

t.test('a read that fails rejects, and the next analysis still works', async (t) => {
  const handle = await open(mediaFixtures.mp4.file, 'r')
  const { size } = await handle.stat()
  await handle.close()
  await t.rejects(analyzeMediaFile(handle, size), { code: 'EBADF' })
  t.match(await tracksOf(mediaFixtures.webm.file), [{ '@type': 'General', Format: 'WebM' }, { '@type': 'Video', Width: 64, Height: 48 }])
})

t.test('a WASM module that fails to load is loaded again on the next call', async (t) => {
  let attempts = 0
  const { analyzeMediaFile: analyze } = await t.mockImport<typeof import('../../../services/storage/probe-mediainfo.js')>('../../../services/storage/probe-mediainfo.js', {
    'mediainfo.js': {
      default: async (options: Parameters<typeof mediaInfoFactory>[0]) => {
        attempts++
        if (attempts === 1) throw new Error('WebAssembly.instantiate(): out of memory')
        return await mediaInfoFactory(options)
      }
    }
  })
  const handle = await open(mediaFixtures.mp4.file, 'r')
  t.teardown(async () => { await handle.close() })
  const { size } = await handle.stat()
  await t.rejects(analyze(handle, size), /out of memory/)
  t.match(await analyze(handle, size), [{ '@type': 'General' }, { '@type': 'Video', Width: 96, Height: 64 }])
  t.equal(attempts, 2)
})
