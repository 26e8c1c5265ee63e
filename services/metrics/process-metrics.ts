import { collectDefaultMetrics, Registry } from 'prom-client'

let registry: Registry | undefined

/**
 * Node's own metrics (process_cpu_seconds_total, process_resident_memory_bytes,
 * nodejs_eventloop_lag_seconds, nodejs_gc_duration_seconds, …) under their
 * usual names. Once per process, not per app: they describe the process, and
 * prom-client's collectors (a GC observer, an event-loop histogram) cannot be
 * stopped again, so one per app would pile up in a test run that builds hundreds.
 */
export function processRegistry (): Registry {
  if (registry === undefined) {
    registry = new Registry()
    collectDefaultMetrics({ register: registry })
  }
  return registry
}
