import type { RunIndex } from './index/run-index.js'
import type { RunStorage } from './run-storage.js'

export const RUN_INTERRUPTED = 'RUN_INTERRUPTED'
const MESSAGE = 'the service stopped while this run was running (a crash or a restart); the outputs stored before that are kept'
const PAGE = 200

/**
 * A run says `running` only while the process working on it lives. After a
 * crash nothing will ever finish the runs it left, and clients polling them
 * would wait for ever, so a start ends them: `failed`, with a
 * RUN_INTERRUPTED error record, outputs kept. Only runs created before
 * `startedAt` are touched, so runs of the process that is starting are safe
 * even if this runs while it already takes requests. Runs in `created` are
 * driven by a client and stay as they are.
 *
 * The index must be complete first: its journal read again (so a
 * `running` written just before a crash is found) and any build finished.
 */
export async function finishInterruptedRuns (storage: RunStorage, index: RunIndex, startedAt: Date): Promise<InterruptedRuns> {
  const result: InterruptedRuns = { finished: [], failed: [] }
  let cursor: string | undefined
  do {
    const page = await index.list({ status: 'running', to: startedAt.toISOString() }, { limit: PAGE, cursor })
    for (const entry of page.runs) {
      try {
        if (await storage.finishInterrupted(entry.run_id, startedAt, { code: RUN_INTERRUPTED, message: MESSAGE })) result.finished.push(entry.run_id)
      } catch (err) {
        // A full or read-only disk must not keep the service from starting to serve what it has; the next start tries again.
        result.failed.push({ run_id: entry.run_id, err })
      }
    }
    cursor = page.next_cursor ?? undefined
  } while (cursor !== undefined)
  return result
}

export interface InterruptedRuns {
  /** ended now as failed (RUN_INTERRUPTED) */
  finished: string[]
  /** still `running`: their metadata.json could not be written */
  failed: Array<{ run_id: string, err: unknown }>
}
