import { join, resolve } from 'node:path'
import { S3Client } from '@aws-sdk/client-s3'
import type { Config } from '../../../config.js'
import type { BlobStore } from './blob-store.js'
import { LocalBlobStore } from './local.js'
import { S3BlobStore } from './s3.js'

// Long enough to follow a redirect on a slow school network, short enough that a leaked link stops working soon.
const DIRECT_URL_SECONDS = 600

/** The blob store STORAGE_DRIVER names, with its settings checked (a missing bucket stops the start). */
export function createBlobStore (config: Config): BlobStore {
  const runsDir = resolve(config.RUNS_DIR)
  if (config.STORAGE_DRIVER === 'local') return new LocalBlobStore(runsDir)
  if (config.S3_BUCKET === undefined) throw new Error('STORAGE_DRIVER=s3 needs S3_BUCKET')
  if ((config.S3_ACCESS_KEY_ID === undefined) !== (config.S3_SECRET_ACCESS_KEY === undefined)) {
    throw new Error('S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY go together (or neither, for the SDK\'s default credentials)')
  }
  const client = new S3Client({
    ...(config.S3_ENDPOINT === undefined ? {} : { endpoint: config.S3_ENDPOINT }),
    region: config.S3_REGION,
    forcePathStyle: config.S3_FORCE_PATH_STYLE,
    ...(config.S3_ACCESS_KEY_ID === undefined ? {} : { credentials: { accessKeyId: config.S3_ACCESS_KEY_ID, secretAccessKey: config.S3_SECRET_ACCESS_KEY! } })
  })
  return new S3BlobStore({
    client,
    bucket: config.S3_BUCKET,
    prefix: config.S3_PREFIX,
    // Media is probed on a local disk before it goes up; a name no run id can have.
    stagingDir: join(runsDir, '.staging'),
    directUrlSeconds: config.S3_MEDIA_REDIRECT ? DIRECT_URL_SECONDS : 0
  })
}
