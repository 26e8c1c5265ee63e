// The listing route's tests, the same file, as several instances run: runs in an S3 bucket and the index in PostgreSQL, rebuilt from the bucket.
import { usePostgresIndex } from '../postgres-env.js'
import { useS3Store } from '../s3-env.js'

useS3Store()
usePostgresIndex()
await import('./runs-list.test.js')
