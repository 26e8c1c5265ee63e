import { Type, type Static } from '@sinclair/typebox'
import { IndexProgress } from './runs-api.js'

export const HealthAnswer = Type.Object({ status: Type.Literal('ok') })
export type HealthAnswer = Static<typeof HealthAnswer>

export const ReadyAnswer = Type.Object({
  status: Type.Literal('ready'),
  checks: Type.Record(Type.String(), Type.Boolean(), { description: 'storage_writable, index_open, and index_complete (false while the index is built: listings lack runs, the rest works)' }),
  index: IndexProgress
})
export type ReadyAnswer = Static<typeof ReadyAnswer>
