import { Type, type Static } from '@sinclair/typebox'

export const HealthAnswer = Type.Object({ status: Type.Literal('ok') })
export type HealthAnswer = Static<typeof HealthAnswer>

export const ReadyAnswer = Type.Object({ status: Type.Literal('ready'), checks: Type.Record(Type.String(), Type.Boolean()) })
export type ReadyAnswer = Static<typeof ReadyAnswer>
