// Broken and forged media, the same file, with the runs in an S3 bucket (STORAGE_DRIVER=s3): nothing is uploaded of what is refused.
import { useS3Store } from '../s3-env.js'

useS3Store()
await import('./media-integrity.test.js')
