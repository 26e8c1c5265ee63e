// Posters and first frames, the same file, with the runs in an S3 bucket (STORAGE_DRIVER=s3): ffmpeg reads a local copy of the object.
import { useS3Store } from '../s3-env.js'

useS3Store()
await import('./thumbnail-posters.test.js')
