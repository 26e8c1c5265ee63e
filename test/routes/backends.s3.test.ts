// The backends and their media sources, the same file, with the runs in an S3 bucket (STORAGE_DRIVER=s3): fetched media go up as objects, nothing half-made stays.
import { useS3Store } from '../s3-env.js'

useS3Store()
await import('./backends.test.js')
