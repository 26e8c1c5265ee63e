import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { randomUUID } from 'node:crypto'
import type { Config } from './config.js'
import configPlugin from './plugins/config.js'
import errorsPlugin from './plugins/errors.js'
import corsPlugin from './plugins/cors.js'
import swaggerPlugin from './plugins/swagger.js'
import multipartPlugin from './plugins/multipart.js'
import storagePlugin from './plugins/storage.js'
import mediaDeliveryPlugin from './plugins/media-delivery.js'
import healthRoutes from './routes/health.js'
import runRoutes from './routes/runs.js'
import mediaRoutes from './routes/media.js'

export interface BuildOptions {
  /** pino options or an instance; defaults to a logger at config.LOG_LEVEL */
  logger?: FastifyServerOptions['logger']
}

export async function buildApp (config: Config, options: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: options.logger ?? { level: config.LOG_LEVEL },
    requestIdHeader: 'x-request-id',
    requestIdLogLabel: 'request_id',
    genReqId: () => randomUUID(),
    ajv: { customOptions: { coerceTypes: 'array', removeAdditional: true, allErrors: false } }
  }).withTypeProvider<TypeBoxTypeProvider>()

  app.addHook('onSend', async (request, reply) => {
    reply.header('X-Request-Id', request.id)
  })

  await app.register(configPlugin, { config })
  await app.register(errorsPlugin)
  await app.register(corsPlugin)
  await app.register(swaggerPlugin)
  await app.register(multipartPlugin)
  await app.register(storagePlugin)
  await app.register(mediaDeliveryPlugin)

  await app.register(healthRoutes)
  await app.register(runRoutes)
  await app.register(mediaRoutes)

  return app
}
