import fp from 'fastify-plugin'
import { ErrorResponse } from '../schemas/common.js'
import { ServiceOverloadedError } from '../services/errors.js'
import { OverloadMonitor } from '../services/http/overload-monitor.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** answers even while the service is overloaded: an operator needs liveness and metrics most then */
    answersWhenOverloaded?: boolean
  }
}

// While requests are being refused, one warning per this many milliseconds, not one per request.
const WARN_EVERY_MS = 10_000

/**
 * A saturated event loop answers every request late, and a flood then takes
 * the whole lab down. Over the OVERLOAD_* limits each request is refused at
 * once with 503 SERVICE_OVERLOADED and Retry-After, before any work, except
 * on routes that answer when overloaded (health, metrics). Every other route
 * that describes its answers is described as possibly answering 503.
 */
export default fp(async function overloadPlugin (app) {
  const config = app.config
  if (config.OVERLOAD_MAX_EVENT_LOOP_DELAY_MS === 0 && config.OVERLOAD_MAX_EVENT_LOOP_UTILIZATION === 0) return
  const monitor = new OverloadMonitor({
    maxEventLoopDelayMs: config.OVERLOAD_MAX_EVENT_LOOP_DELAY_MS,
    maxEventLoopUtilization: config.OVERLOAD_MAX_EVENT_LOOP_UTILIZATION,
    sampleIntervalMs: config.OVERLOAD_SAMPLE_INTERVAL_MS
  })
  // One error for every refusal: under a flood, a stack captured per request would be more load.
  const refusal = new ServiceOverloadedError(config.OVERLOAD_RETRY_AFTER_SECONDS)
  let warned = -Infinity

  // Measured from ready on: the start itself holds the loop while no request waits.
  app.addHook('onReady', async () => { monitor.start() })
  app.addHook('onClose', async () => { monitor.stop() })

  app.addHook('onRoute', (route) => {
    const responses = route.schema?.response as Record<string, unknown> | undefined
    if (route.config?.answersWhenOverloaded === true || responses === undefined || '503' in responses) return
    route.schema = { ...route.schema, response: { ...responses, 503: ErrorResponse } }
  })

  app.addHook('onRequest', (request, _reply, done) => {
    const overload = monitor.overload
    if (overload === null || request.routeOptions.config.answersWhenOverloaded === true) {
      done()
      return
    }
    if (performance.now() - warned > WARN_EVERY_MS) {
      warned = performance.now()
      request.log.warn(overload, 'overloaded: refusing requests with 503 until the event loop recovers')
    }
    done(refusal)
  })
}, { name: 'overload', dependencies: ['config'] })
