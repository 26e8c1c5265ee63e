import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { AjvCompiler } from '@fastify/ajv-compiler'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { randomUUID } from 'node:crypto'
import type { Config } from './config.js'
import { createRunstore } from './runstore.js'
import configPlugin from './plugins/config.js'
import errorsPlugin from './plugins/errors.js'
import httpProtocolPlugin, { clientErrorHandler } from './plugins/http-protocol.js'
import corsPlugin from './plugins/cors.js'
import swaggerPlugin from './plugins/swagger.js'
import runstorePlugin from './plugins/runstore.js'
import storagePlugin from './plugins/storage.js'
import adminPlugin from './plugins/admin.js'
import metricsPlugin from './plugins/metrics.js'
import overloadPlugin from './plugins/overload.js'
import exportsPlugin from './plugins/exports.js'
import mediaDeliveryPlugin from './plugins/media-delivery.js'
import backendsPlugin from './plugins/backends.js'
import pipelinePlugin from './plugins/pipeline.js'
import healthRoutes from './routes/health.js'
import runRoutes from './routes/runs.js'
import mediaRoutes from './routes/media.js'
import pipelineRoutes from './routes/pipeline.js'
import backendRoutes from './routes/backends.js'
import metricsRoutes from './routes/metrics.js'
import exportRoutes from './routes/exports.js'
import trashRoutes from './routes/trash.js'
import archiveRoutes from './routes/archives.js'
import pageRoutes from './routes/pages.js'

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/
// strictTypes off: the multipart body schema deliberately has no `type` (see routes/runs.ts)
const AJV_OPTIONS = { removeAdditional: true, allErrors: false, strictTypes: false } as const
const ajvCompilers = AjvCompiler()

export interface BuildOptions {
  /** pino options or an instance; defaults to a logger at config.LOG_LEVEL */
  logger?: FastifyServerOptions['logger']
}

export async function buildApp (config: Config, options: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: options.logger ?? { level: config.LOG_LEVEL },
    // A caller's X-Request-Id (a proxy's, a frontend's) is kept when it is a plain token;
    // anything else would be echoed into logs and headers, so it gets a fresh id.
    requestIdHeader: false,
    genReqId: (request) => {
      const given = request.headers['x-request-id']
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID()
    },
    // Requests Node would refuse with a body outside the contract (plugins/http-protocol.ts):
    // what the parser cannot read, and an HTTP/1.1 request without Host (the plugin refuses it).
    clientErrorHandler,
    http: { requireHostHeader: false },
    schemaController: {
      compilersFactory: {
        // Query strings, params and headers are text: they are converted to the schema's types.
        // A JSON body has types of its own: "schema": 123 or ["dada"] where a string belongs is refused, not converted.
        buildValidator: (externalSchemas) => {
          const converting = ajvCompilers(externalSchemas, { customOptions: { ...AJV_OPTIONS, coerceTypes: 'array' } })
          const strict = ajvCompilers(externalSchemas, { customOptions: { ...AJV_OPTIONS, coerceTypes: false } })
          return (route) => route.httpPart === 'body' ? strict(route) : converting(route)
        }
      }
    }
  }).withTypeProvider<TypeBoxTypeProvider>()

  // A callback hook, not an async one: it runs on every media answer, the hot path.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('X-Request-Id', request.id)
    done()
  })

  // Every service is built by the composition root; the plugins only decorate the instance with them.
  const runstore = await createRunstore(config, { logger: app.log })
  try {
    await app.register(configPlugin, { config })
    await app.register(runstorePlugin, { runstore })
    await app.register(errorsPlugin)
    await app.register(httpProtocolPlugin)
    await app.register(metricsPlugin)
    await app.register(corsPlugin)
    // After CORS, so a browser can read a 503's Retry-After; before every route, which it describes as possibly overloaded.
    await app.register(overloadPlugin)
    await app.register(swaggerPlugin)
    await app.register(storagePlugin)
    await app.register(adminPlugin)
    await app.register(exportsPlugin)
    await app.register(mediaDeliveryPlugin)
    await app.register(backendsPlugin)
    await app.register(pipelinePlugin)

    await app.register(healthRoutes)
    await app.register(runRoutes)
    await app.register(mediaRoutes)
    await app.register(pipelineRoutes)
    await app.register(backendRoutes)
    await app.register(metricsRoutes)
    await app.register(exportRoutes)
    await app.register(trashRoutes)
    await app.register(archiveRoutes)
    await app.register(pageRoutes)
  } catch (err) {
    await runstore.close()
    throw err
  }
  return app
}
