import type { RunIndex, RunSource } from './index/run-index.js'
import type { RunStorage } from './run-storage.js'

export const RUN_INTERRUPTED = 'RUN_INTERRUPTED'
const MESSAGE = 'the service stopped while this run was running (a crash or a restart); the outputs stored before that are kept'

/**
 * A run says `running` only while the process working on it lives. After a
 * crash nothing will ever finish the runs it left, and clients polling them
 * would wait for ever, so they are ended: `failed`, with a RUN_INTERRUPTED
 * error record, outputs kept. The index names them (RunIndex.abandonedRuns):
 * for one process the runs created before its start (`startedAt`), for
 * instances sharing an index the runs of instances that are gone, which is
 * why instances ask again now and then. Runs in `created` are driven by a
 * client and stay as they are.
 *
 * The index must be complete first: its journal read again (so a
 * `running` written just before a crash is found) and any build finished.
 */
export async function finishInterruptedRuns (storage: RunStorage, index: RunIndex, startedAt: Date, source: RunSource): Promise<InterruptedRuns> {
  const result: InterruptedRuns = { finished: [], failed: [] }
  for (const runId of await index.abandonedRuns(startedAt, source)) {
    try {
      // The index chose the run; under the run's lock only its status is checked again.
      if (await storage.finishInterrupted(runId, new Date(), { code: RUN_INTERRUPTED, message: MESSAGE })) result.finished.push(runId)
    } catch (err) {
      // A full or read-only disk must not keep the service from starting to serve what it has; the next check tries again.
      result.failed.push({ run_id: runId, err })
    }
  }
  return result
}

export interface InterruptedRuns {
  /** ended now as failed (RUN_INTERRUPTED) */
  finished: string[]
  /** still `running`: their metadata.json could not be written */
  failed: Array<{ run_id: string, err: unknown }>
}
