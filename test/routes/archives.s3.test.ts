// The archive routes' tests, the same file, with the runs in an S3 bucket (STORAGE_DRIVER=s3) and the archives on the local disk (ARCHIVE_DIR).
import { useS3Store } from '../s3-env.js'

useS3Store()
await import('./archives.test.js')
