import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { BackendList } from '../schemas/backends.js'

const HEALTH_TIMEOUT_MS = 5000

const backendRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/api/backends', {
    schema: {
      tags: ['service'],
      summary: 'the generator backends: configured or not, their queues, and whether their upstream answers',
      response: { 200: BackendList }
    }
  }, async () => {
    const backends = await Promise.all(app.backends.backends.map(async (backend) => {
      const reason = backend.unavailableReason()
      const queue = app.backends.queue(backend.name)
      return {
        name: backend.name,
        available: reason === null,
        unavailable_reason: reason,
        queue: { running: queue.running, waiting: queue.waiting },
        health: reason === null && backend.health !== undefined ? await withTimeout(backend.health()) : null
      }
    }))
    return { backends }
  })
}

async function withTimeout (check: Promise<{ ok: boolean, details?: unknown }>): Promise<{ ok: boolean, details?: unknown }> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<{ ok: boolean, details: unknown }>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, details: { error: `no answer within ${HEALTH_TIMEOUT_MS} ms` } }), HEALTH_TIMEOUT_MS)
  })
  try {
    return await Promise.race([check, timeout])
  } finally {
    clearTimeout(timer)
  }
}

export default backendRoutes
