// The listing route's tests, the same file, with the runs in an S3 bucket (STORAGE_DRIVER=s3): the index is filled and rebuilt from the bucket.
import { useS3Store } from '../s3-env.js'

useS3Store()
await import('./runs-list.test.js')
