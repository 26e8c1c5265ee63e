import type { Test } from 'tap'
import type { BlobStore } from '../services/storage/blob/blob-store.js'
import { createBlobStore } from '../services/storage/blob/create-blob-store.js'
import { startFakeS3, type FakeS3 } from './fakes/s3-server.js'
import { tempRunsDir, testConfig } from './helper.js'

/** Every blob store driver: the storage, index and route suites that take a driver run once per entry. */
export const STORAGE_DRIVERS = ['local', 's3'] as const
export type StorageDriver = typeof STORAGE_DRIVERS[number]

/** The settings that put runs on this driver: nothing for local; for s3, an S3 server started for the test with a fresh bucket. */
export async function driverEnv (t: Test, driver: StorageDriver): Promise<{ env: Record<string, string>, s3?: FakeS3 }> {
  if (driver === 'local') return { env: {} }
  const s3 = await startFakeS3(t)
  return { env: s3.env, s3 }
}

export interface DriverStore {
  blobs: BlobStore
  /** RUNS_DIR: the run folders on local, the index and media on their way in on s3 */
  runsDir: string
  s3?: FakeS3
}

/** A prepared blob store of this driver on empty storage, built as the service builds it. */
export async function blobStoreOf (t: Test, driver: StorageDriver, env: Record<string, string> = {}): Promise<DriverStore> {
  const runsDir = await tempRunsDir(t)
  const { env: driverSettings, s3 } = await driverEnv(t, driver)
  const blobs = createBlobStore(testConfig(runsDir, { ...driverSettings, ...env }))
  await blobs.prepare()
  return { blobs, runsDir, ...(s3 === undefined ? {} : { s3 }) }
}

/** `fn` as one subtest per driver, named after it. */
export function eachDriver (t: Test, name: string, fn: (t: Test, driver: StorageDriver) => Promise<void>): void {
  for (const driver of STORAGE_DRIVERS) void t.test(`${name} [${driver}]`, async (t) => { await fn(t, driver) })
}
