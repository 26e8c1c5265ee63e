// The media routes' tests, the same file, with the runs in an S3 bucket (STORAGE_DRIVER=s3): ranges and the memory cache over objects.
import { useS3Store } from '../s3-env.js'

useS3Store()
await import('./media.test.js')
