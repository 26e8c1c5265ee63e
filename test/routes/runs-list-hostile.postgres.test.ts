// Hostile listing filters, the same file, with the run index in PostgreSQL (DATABASE_URL): NUL, quotes and operators meet its text search.
import { usePostgresIndex } from '../postgres-env.js'

usePostgresIndex()
await import('./runs-list-hostile.test.js')
