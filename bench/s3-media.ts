// Media delivery with STORAGE_DRIVER=s3: the media route of an app whose runs
// are in a bucket, against a plain GET of the same object from the same S3
// server, and how many requests to the bucket each answer costs. Runs in
// `npm run bench`, or alone: `npm run build && node dist/bench/s3-media.js`.
// The S3 server is fauxqs (a dev dependency) in this process, as in the tests.
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildApp } from '../app.js'
import { loadConfig } from '../config.js'
import { measureLoad, type MeasuredLoad } from './load.js'
import { servedImages } from './png.js'
import { loadSettings, printTable } from './report.js'

const BUCKET = 'runstore-bench'
const PREFIX = 'runs'

/** Prints the S3 rows; true when every answer had the stored bytes (there is no speed target: it says what a second instance-safe read costs). */
export async function benchS3Media (): Promise<boolean> {
  const { connections, seconds, warmupSeconds } = loadSettings()
  const { buildApp: buildS3 } = await import('fauxqs')
  const s3 = buildS3({ logger: false })
  let bucketRequests = 0
  s3.addHook('onRequest', async () => { bucketRequests++ })
  const runsDir = await mkdtemp(join(tmpdir(), 'runstore-bench-s3-'))
  try {
    const endpoint = await s3.listen({ host: '127.0.0.1', port: 0 })
    const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' } })
    await client.send(new CreateBucketCommand({ Bucket: BUCKET }))
    client.destroy()
    const app = await buildApp(loadConfig({
      RUNS_DIR: runsDir,
      CONFIGS_DIR: fileURLToPath(new URL('../../configs', import.meta.url)),
      LOG_LEVEL: 'warn',
      STORAGE_DRIVER: 's3',
      S3_BUCKET: BUCKET,
      S3_PREFIX: PREFIX,
      S3_ENDPOINT: endpoint,
      S3_REGION: 'us-east-1',
      S3_ACCESS_KEY_ID: 'bench',
      S3_SECRET_ACCESS_KEY: 'bench',
      S3_FORCE_PATH_STYLE: 'true'
    }))
    try {
      const base = await app.listen({ host: '127.0.0.1', port: 0 })
      await app.runstore.startup
      console.log()
      console.log(`media from an S3 bucket (STORAGE_DRIVER=s3; fauxqs in this process, ${connections} connections, ${seconds} s after ${warmupSeconds} s warm-up):`)
      let ok = true
      const rows = [['file', 'what answers', 'req/s', 'p50 ms', 'p99 ms', 'cpu us/req', 'S3 requests/answer', 'vs bucket GET']]
      for (const { label, bytes } of Object.values(servedImages())) {
        const run = await app.storage.createRun({ schema: 'bench', execution_mode: 'bench', input_text: `s3 ${label}` })
        const output = await app.storage.addMedia(run.run_id, bytes, { config: 'bench', backend: 'bench', media_type: 'image' })
        const urls = { route: `${base}/api/media/image/${run.run_id}`, bucket: `${endpoint}/${BUCKET}/${PREFIX}/${run.run_id}/${output.filename}` }
        const job = { connections, warmupSeconds, durationSeconds: seconds, bodyBytes: bytes.length }
        /** Two GETs that must answer the stored bytes, each with the bucket requests it made (the first fills the media cache), then the load. */
        const measure = async (url: string): Promise<{ load: MeasuredLoad, perAnswer: string }> => {
          const counts: number[] = []
          for (let i = 0; i < 2; i++) {
            const before = bucketRequests
            const response = await fetch(url)
            if (response.status !== 200 || !Buffer.from(await response.arrayBuffer()).equals(bytes)) throw new Error(`${url} did not answer the stored bytes (${response.status})`)
            counts.push(bucketRequests - before)
          }
          const load = await measureLoad({ ...job, url })
          for (const problem of load.problems) console.log(`  FAILURE ${url}: ${problem}`)
          ok &&= load.problems.length === 0
          return { load, perAnswer: counts.join(' then ') }
        }
        const bucket = await measure(urls.bucket)
        const route = await measure(urls.route)
        rows.push([label, 'media route over s3', route.load.requestsPerSecond.toFixed(0), String(route.load.latencyP50Ms), String(route.load.latencyP99Ms),
          route.load.serverCpuMicrosPerRequest.toFixed(1), route.perAnswer, `${(route.load.requestsPerSecond / bucket.load.requestsPerSecond).toFixed(2)}x`])
        rows.push(['', 'bucket GET (reference)', bucket.load.requestsPerSecond.toFixed(0), String(bucket.load.latencyP50Ms), String(bucket.load.latencyP99Ms),
          bucket.load.serverCpuMicrosPerRequest.toFixed(1), bucket.perAnswer, '1.00x'])
      }
      printTable(rows)
      console.log('  S3 requests/answer: what the first GET and the next asked of the bucket, counted at the S3 server (the media cache keeps')
      console.log('  the bytes after the first; metadata.json is read every time); cpu us/req: this process, where the app and the S3 server run')
      return ok
    } finally {
      await app.close()
    }
  } finally {
    await s3.close()
    await rm(runsDir, { recursive: true, force: true })
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  benchS3Media().then((ok) => { process.exitCode = ok ? 0 : 1 }, (err: unknown) => {
    console.error(err)
    process.exitCode = 1
  })
}
