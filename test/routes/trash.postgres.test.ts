// The trash routes' tests, the same file, with the run index in PostgreSQL (DATABASE_URL): what it lists and filters comes from there.
import { usePostgresIndex } from '../postgres-env.js'

usePostgresIndex()
await import('./trash.test.js')
