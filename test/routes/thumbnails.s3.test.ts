// Thumbnails, the same file, with the runs in an S3 bucket (STORAGE_DRIVER=s3): made from the objects, cached on the local disk.
import { useS3Store } from '../s3-env.js'

useS3Store()
await import('./thumbnails.test.js')
