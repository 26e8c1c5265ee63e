import type { Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { S3Client, CreateBucketCommand } from '@aws-sdk/client-s3'
import { buildApp } from 'fauxqs'

/** What fauxqs keeps of an object; its S3Store is not part of the package's exports, so it is reached by path. */
interface FakeObject { etag: string }
interface FakeS3Store {
  getObject: (bucket: string, key: string) => FakeObject
  createBucket: (name: string) => void
}
type S3StoreClass = new () => FakeS3Store
const { S3Store } = await import(new URL('./s3/s3Store.js', import.meta.resolve('fauxqs')).href) as { S3Store: S3StoreClass }

export interface FakeS3 {
  /** http://127.0.0.1:<port> */
  endpoint: string
  /** a fresh, empty bucket */
  bucket: string
  client: S3Client
  /** the settings that make runstore use this bucket */
  env: Record<string, string>
  /** the stored object's ETag, as a conditional write compares it */
  etag: (key: string) => string
  /** another fresh, empty bucket on the same server, and the settings that make runstore use it */
  newBucket: () => Promise<{ bucket: string, env: Record<string, string> }>
}

/**
 * An S3 protocol server on 127.0.0.1 (fauxqs 1.9: correct ranges,
 * including suffix ranges, and multipart uploads) with a fresh bucket,
 * stopped when the test ends. fauxqs 1.9 ignores If-Match and If-None-Match
 * on writes (it honours them on GET only), so this wrapper checks them on
 * PutObject and CompleteMultipartUpload as S3 does: 412 PreconditionFailed,
 * and 404 NoSuchKey for If-Match on a key that is not there. The check and
 * the write happen in one turn of the event loop, so concurrent writers
 * race as they do against S3.
 */
export async function startFakeS3 (t: Test): Promise<FakeS3> {
  const s3Store = new S3Store()
  const app = buildApp({ logger: false, stores: { s3Store } as never })
  app.addHook('preHandler', (request, reply, done) => {
    const params = request.params as { bucket?: string, '*'?: string }
    const query = request.query as Record<string, string | undefined>
    const writes = (request.method === 'PUT' && query.partNumber === undefined) || (request.method === 'POST' && query.uploadId !== undefined)
    const ifNoneMatch = request.headers['if-none-match']
    const ifMatch = request.headers['if-match']
    if (!writes || params.bucket === undefined || !params['*'] || (ifNoneMatch === undefined && ifMatch === undefined)) {
      done()
      return
    }
    let current: string | null = null
    try {
      current = s3Store.getObject(params.bucket, params['*']).etag
    } catch {}
    if (ifMatch !== undefined && current === null) {
      void reply.code(404).type('application/xml').send(s3Error('NoSuchKey', 'The specified key does not exist.'))
    } else if ((ifNoneMatch === '*' && current !== null) || (ifMatch !== undefined && ifMatch !== current)) {
      void reply.code(412).type('application/xml').send(s3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold'))
    } else {
      done()
    }
  })
  const address = await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await app.close() })
  const client = new S3Client({ endpoint: address, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } })
  t.teardown(() => { client.destroy() })
  const newBucket = async (): Promise<{ bucket: string, env: Record<string, string> }> => {
    const bucket = `runstore-${randomBytes(6).toString('hex')}`
    await client.send(new CreateBucketCommand({ Bucket: bucket }))
    const env = {
      STORAGE_DRIVER: 's3',
      S3_BUCKET: bucket,
      S3_ENDPOINT: address,
      S3_REGION: 'us-east-1',
      S3_ACCESS_KEY_ID: 'test',
      S3_SECRET_ACCESS_KEY: 'test',
      S3_FORCE_PATH_STYLE: 'true'
    }
    return { bucket, env }
  }
  const { bucket, env } = await newBucket()
  return { endpoint: address, bucket, client, env, etag: (key) => s3Store.getObject(bucket, key).etag, newBucket }
}

function s3Error (code: string, message: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`
}
