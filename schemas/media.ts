import { Type, type Static } from '@sinclair/typebox'

export const MEDIA_TYPES = ['image', 'audio', 'video', 'model3d'] as const
export const MediaType = Type.Union(MEDIA_TYPES.map((t) => Type.Literal(t)), {
  description: 'kind of media, decided from the bytes'
})
export type MediaType = Static<typeof MediaType>

export function isMediaType (value: unknown): value is MediaType {
  return typeof value === 'string' && (MEDIA_TYPES as readonly string[]).includes(value)
}
