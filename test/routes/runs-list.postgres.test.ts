// The listing route's tests, the same file, with the run index in PostgreSQL (DATABASE_URL).
import { usePostgresIndex } from '../postgres-env.js'

usePostgresIndex()
await import('./runs-list.test.js')
