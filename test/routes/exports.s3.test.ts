// The export routes' tests, the same file, with the runs in an S3 bucket (STORAGE_DRIVER=s3): the ZIP streams the objects.
import { useS3Store } from '../s3-env.js'

useS3Store()
await import('./exports.test.js')
