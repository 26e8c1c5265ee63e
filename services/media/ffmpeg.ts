import { execFile } from 'node:child_process'
import { access, constants, stat } from 'node:fs/promises'
import { delimiter, isAbsolute, join } from 'node:path'

// ffmpeg is optional: it only turns a video's neutral poster into its first frame.
const VERSION_TIMEOUT_MS = 5000
const FRAME_TIMEOUT_MS = 30000
// A PNG of one frame at the largest thumbnail width stays far below this.
const MAX_FRAME_BYTES = 64 * 1024 * 1024
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

/**
 * The ffmpeg the service may use: the first executable named `ffmpeg` on
 * `searchPath` (PATH's syntax) that answers `-version` as ffmpeg does, as an
 * absolute path; null when there is none. Called once at start, so a PATH
 * changed later changes nothing.
 */
export async function findFfmpeg (searchPath: string | undefined): Promise<string | null> {
  for (const dir of (searchPath ?? '').split(delimiter)) {
    // An empty or relative entry would mean the working directory: never trusted.
    if (dir === '' || !isAbsolute(dir)) continue
    const candidate = join(dir, 'ffmpeg')
    if (!await isExecutableFile(candidate)) continue
    return await answersAsFfmpeg(candidate) ? candidate : null
  }
  return null
}

async function isExecutableFile (path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK)
    return (await stat(path)).isFile()
  } catch {
    return false
  }
}

async function answersAsFfmpeg (path: string): Promise<boolean> {
  return await new Promise((resolve) => {
    execFile(path, ['-version'], { timeout: VERSION_TIMEOUT_MS }, (err, stdout) => {
      resolve(err === null && stdout.startsWith('ffmpeg version'))
    })
  })
}

/**
 * The first frame of the video in `file` as PNG bytes, no wider than
 * `maxWidth` (the display rotation applied, as ffmpeg does by default).
 * Rejects when ffmpeg fails, takes too long or yields nothing.
 */
export async function firstFrame (ffmpeg: string, file: string, maxWidth: number): Promise<Buffer> {
  const args = [
    '-nostdin', '-hide_banner', '-v', 'error',
    '-i', file,
    '-frames:v', '1',
    // `\,` keeps the comma inside min() from separating filters.
    '-vf', `scale=w=min(${maxWidth}\\,iw):h=-1`,
    '-f', 'image2pipe', '-c:v', 'png', 'pipe:1'
  ]
  return await new Promise((resolve, reject) => {
    execFile(ffmpeg, args, { encoding: 'buffer', timeout: FRAME_TIMEOUT_MS, maxBuffer: MAX_FRAME_BYTES }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`ffmpeg failed: ${stderr.toString('utf8').trim().split('\n')[0] || err.message}`))
      else if (!stdout.subarray(0, PNG_SIGNATURE.length).equals(PNG_SIGNATURE)) reject(new Error('ffmpeg gave no PNG (no video frame?)'))
      else resolve(stdout)
    })
  })
}
