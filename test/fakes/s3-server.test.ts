import t from 'tap'
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'
import { startFakeS3 } from './s3-server.js'

const bytes = Buffer.from(Array.from({ length: 12 * 1024 * 1024 + 5 }, (_, i) => (i * 31) % 251))

t.test('the S3 fake answers ranges (suffix ranges too), takes multipart uploads and checks conditional writes', async (t) => {
  const s3 = await startFakeS3(t)
  const upload = new Upload({ client: s3.client, partSize: 5 * 1024 * 1024, params: { Bucket: s3.bucket, Key: 'big.bin', Body: bytes, IfNoneMatch: '*' } })
  await upload.done()
  t.match(s3.etag('big.bin'), /-3"$/, 'three parts')
  const get = async (Range?: string): Promise<Buffer> => Buffer.from(await (await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: 'big.bin', Range }))).Body!.transformToByteArray())
  t.same(await get(), bytes)
  t.same(await get('bytes=10-19'), bytes.subarray(10, 20))
  t.same(await get('bytes=-7'), bytes.subarray(bytes.length - 7), 'the last 7 bytes')
  t.same(await get(`bytes=${bytes.length - 3}-`), bytes.subarray(bytes.length - 3))

  await t.rejects(new Upload({ client: s3.client, partSize: 5 * 1024 * 1024, params: { Bucket: s3.bucket, Key: 'big.bin', Body: bytes, IfNoneMatch: '*' } }).done(), { name: 'PreconditionFailed' }, 'a multipart upload over an object fails at its completion')
  await t.rejects(s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'big.bin', Body: 'x', IfNoneMatch: '*' })), { name: 'PreconditionFailed' })
  const etag = s3.etag('big.bin')
  await t.rejects(s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'big.bin', Body: 'x', IfMatch: '"0"' })), { name: 'PreconditionFailed' })
  await t.rejects(s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'none.bin', Body: 'x', IfMatch: etag })), { name: 'NoSuchKey' })
  t.equal(s3.etag('big.bin'), etag, 'nothing written by a failed condition')
  const put = await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'big.bin', Body: 'x', IfMatch: etag }))
  t.equal(put.ETag, s3.etag('big.bin'))
  t.same(await get(), Buffer.from('x'))
})
