import { Type, type Static } from '@sinclair/typebox'
import { IndexProgress } from './runs-api.js'

export const HealthAnswer = Type.Object({ status: Type.Literal('ok') })
export type HealthAnswer = Static<typeof HealthAnswer>

export const ReadyAnswer = Type.Object({
  status: Type.Literal('ready'),
  checks: Type.Record(Type.String(), Type.Boolean(), { description: 'storage_writable, index_open, index_complete (false while the index is built: listings lack runs, the rest works), and startup_done (false while the start\'s background work runs: the crash sweep, the index\'s build or catch-up, ending the runs a stopped process left running)' }),
  index: IndexProgress
})
export type ReadyAnswer = Static<typeof ReadyAnswer>
