import type { MediaOutput, RunMetadata, RunStatus } from '../../schemas/run.js'

/** What subscribers hear once a change is durable in the store. */
export type RunEvent =
  | { type: 'run.created', run_id: string, metadata: RunMetadata }
  /** previous_status: the status before this write (a run ended when it moves from one that is not final to one that is) */
  | { type: 'run.updated', run_id: string, metadata: RunMetadata, previous_status: RunStatus }
  /** follows the run.updated of the same write */
  | { type: 'output.added', run_id: string, metadata: RunMetadata, output: MediaOutput }
  | { type: 'run.deleted', run_id: string }
  /** a deleted or archived run is back (from the trash or its archive), with the metadata it had */
  | { type: 'run.restored', run_id: string, metadata: RunMetadata }
  /** the run left the store for an archive (`archive`: its file name), with the metadata it was archived with */
  | { type: 'run.archived', run_id: string, metadata: RunMetadata, archive: string }

export type RunEventType = RunEvent['type']

/**
 * May be asynchronous; its work up to its first await runs in the order of
 * the changes (per run, that is the order of the writes). It cannot fail the
 * write that caused the event: what it throws goes to onListenerError.
 */
export type RunEventListener = (event: RunEvent) => void | Promise<void>

export interface RunEventsOptions {
  /** told about a listener that threw or rejected; the change itself stands */
  onListenerError?: (err: unknown, event: RunEvent, listener: string) => void
}

/**
 * "A run changed", for any number of subscribers (the index, the media
 * cache, exports, metrics). The storage emits after each durable write or
 * deletion, whoever asked for it: a route, the pipeline, a CLI, a job.
 */
export class RunEvents {
  readonly #listeners = new Map<symbol, { name: string, listener: RunEventListener }>()
  readonly #onListenerError: NonNullable<RunEventsOptions['onListenerError']>

  constructor (options: RunEventsOptions = {}) {
    this.#onListenerError = options.onListenerError ?? (() => {})
  }

  /** Calls `listener` for every event from now on; returns the unsubscribe function. */
  subscribe (name: string, listener: RunEventListener): () => void {
    const key = Symbol(name)
    this.#listeners.set(key, { name, listener })
    return () => { this.#listeners.delete(key) }
  }

  get subscribers (): string[] {
    return [...this.#listeners.values()].map((l) => l.name)
  }

  emit (event: RunEvent): void {
    for (const { name, listener } of this.#listeners.values()) {
      try {
        const result = listener(event)
        if (result !== undefined) result.catch((err: unknown) => { this.#report(err, event, name) })
      } catch (err) {
        this.#report(err, event, name)
      }
    }
  }

  #report (err: unknown, event: RunEvent, name: string): void {
    try {
      this.#onListenerError(err, event, name)
    } catch {
      // A failing error reporter must not reach the write either.
    }
  }
}
