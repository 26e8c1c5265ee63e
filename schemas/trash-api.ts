import { Type, type Static } from '@sinclair/typebox'
import { RunId } from './run.js'

// What the /api/trash routes answer; a restored run is answered as its RunMetadata (run.ts).

const NullableText = (description: string) => Type.Union([Type.String(), Type.Null()], { description })

export const TrashedRunSummary = Type.Object({
  run_id: RunId,
  deleted_at: Type.String({ format: 'date-time', description: 'when DELETE moved it to the trash' }),
  schema: NullableText('pipeline name, from its metadata.json (null when that cannot be read)'),
  user_id: NullableText('from its metadata.json'),
  input_text: NullableText('what the child typed, from its metadata.json')
})
export type TrashedRunSummary = Static<typeof TrashedRunSummary>

export const TrashList = Type.Object({
  trash_days: Type.Integer({ description: 'TRASH_DAYS: days a deleted run stays restorable before emptying the trash removes it (0: DELETE removes runs at once)' }),
  runs: Type.Array(TrashedRunSummary, { description: 'the most recently deleted first' })
})
export type TrashList = Static<typeof TrashList>
