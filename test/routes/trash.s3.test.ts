// The trash routes' tests, the same file, with the runs in an S3 bucket (STORAGE_DRIVER=s3): trashed runs under `<prefix>/.trash/`.
import { useS3Store } from '../s3-env.js'

useS3Store()
await import('./trash.test.js')
