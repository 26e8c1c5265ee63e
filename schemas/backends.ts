import { Type, type Static } from '@sinclair/typebox'

export const BackendStatus = Type.Object({
  name: Type.String({ examples: ['comfyui'] }),
  available: Type.Boolean({ description: 'configured (URL or key set)' }),
  unavailable_reason: Type.Union([Type.String(), Type.Null()]),
  queue: Type.Object({ running: Type.Integer(), waiting: Type.Integer() }),
  health: Type.Union([
    Type.Object({ ok: Type.Boolean(), details: Type.Optional(Type.Unknown()) }),
    Type.Null()
  ], { description: 'the upstream\'s own answer (ComfyUI: /system_stats); null when not configured or not checkable' })
})
export type BackendStatus = Static<typeof BackendStatus>

export const BackendList = Type.Object({ backends: Type.Array(BackendStatus) })
export type BackendList = Static<typeof BackendList>
