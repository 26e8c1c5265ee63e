import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'

export default fp(async function swaggerPlugin (app) {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'runstore',
        description: 'Runs the generation pipeline of an AI art education platform and keeps every run\'s media: one folder per run with metadata.json, input_text.txt, transformed_text.txt and its media files.',
        version: '0.1.0'
      },
      ...(app.config.PUBLIC_BASE_URL !== undefined ? { servers: [{ url: app.config.PUBLIC_BASE_URL }] } : {}),
      components: {
        securitySchemes: {
          adminToken: { type: 'http', scheme: 'bearer', description: 'ADMIN_TOKEN' },
          metricsToken: { type: 'http', scheme: 'bearer', description: 'METRICS_TOKEN' }
        }
      },
      tags: [
        { name: 'pipeline', description: 'run a pipeline on a prompt (translation, safety, interception, generation) and store what it makes' },
        { name: 'runs', description: 'run folders and their metadata, for clients that drive their own generation' },
        { name: 'media', description: 'stored media, served with Range, ETag and caching headers' },
        { name: 'archives', description: 'old runs in monthly ZIP archives: archiving, restoring, pruning (admin)' },
        { name: 'exports', description: 'many runs at once, for research: folders, tables, a gallery and a report in one ZIP' },
        { name: 'service', description: 'health, readiness, backends and metrics' }
      ]
    }
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
}, { name: 'swagger', dependencies: ['config'] })
