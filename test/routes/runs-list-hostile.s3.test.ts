// Hostile listing filters, the same file, with the runs in an S3 bucket (STORAGE_DRIVER=s3).
import { useS3Store } from '../s3-env.js'

useS3Store()
await import('./runs-list-hostile.test.js')
