import root from 'tap'
import { DeleteObjectsCommand, GetObjectCommand, PutObjectCommand, paginateListObjectsV2 } from '@aws-sdk/client-s3'
import { startFakeS3, type FakeS3 } from './fakes/s3-server.js'
import { useStoreEnv } from './helper.js'
import type { StoredView } from './stored-view.js'

// A prefix, so the suites also prove that runs stay under it (`runs/<run_id>/metadata.json`).
const PREFIX = 'runs'

/**
 * Makes every app the test file builds store its runs in S3
 * (STORAGE_DRIVER=s3): one fake S3 server for the file, and one new bucket
 * per store (RUNS_DIR), so that an app started again over the same store
 * finds the same runs, as it would find the same folders.
 */
export function useS3Store (): void {
  let server: Promise<FakeS3> | undefined
  const buckets = new Map<string, Promise<{ bucket: string, env: Record<string, string> }>>()
  const bucketOf = async (runsDir: string): Promise<{ bucket: string, env: Record<string, string> }> => {
    let bucket = buckets.get(runsDir)
    if (bucket === undefined) {
      server ??= startFakeS3(root)
      bucket = server.then(async (s3) => await s3.newBucket())
      buckets.set(runsDir, bucket)
    }
    return await bucket
  }
  useStoreEnv('s3', async (runsDir) => ({ ...(await bucketOf(runsDir)).env, S3_PREFIX: PREFIX }), (runsDir) => {
    const reach = async (): Promise<{ client: FakeS3['client'], bucket: string }> => {
      const { bucket } = await bucketOf(runsDir)
      return { client: (await server!).client, bucket }
    }
    const names = async (prefix: string): Promise<string[]> => {
      const { client, bucket } = await reach()
      const keys: string[] = []
      for await (const page of paginateListObjectsV2({ client }, { Bucket: bucket, Prefix: prefix })) {
        for (const object of page.Contents ?? []) keys.push(object.Key!.slice(prefix.length))
      }
      return keys
    }
    const view: StoredView = {
      read: async (runId, name) => {
        const { client, bucket } = await reach()
        const answer = await client.send(new GetObjectCommand({ Bucket: bucket, Key: `${PREFIX}/${runId}/${name}` }))
        return Buffer.from(await answer.Body!.transformToByteArray())
      },
      list: async (runId) => (await names(`${PREFIX}/${runId}/`)).sort(),
      entries: async () => [...new Set((await names(`${PREFIX}/`)).map((key) => key.split('/')[0]!))].sort(),
      trash: async () => [...new Set((await names(`${PREFIX}/.trash/`)).map((key) => key.split('/')[0]!))].sort(),
      files: async () => (await names(`${PREFIX}/`)).sort(),
      write: async (runId, name, data) => {
        const { client, bucket } = await reach()
        await client.send(new PutObjectCommand({ Bucket: bucket, Key: `${PREFIX}/${runId}/${name}`, Body: data }))
      },
      remove: async (runId, name) => {
        const { client, bucket } = await reach()
        const keys = (name === undefined ? await names(`${PREFIX}/${runId}/`) : [name]).map((name) => ({ Key: `${PREFIX}/${runId}/${name}` }))
        if (keys.length > 0) await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys } }))
      }
    }
    return view
  })
}
