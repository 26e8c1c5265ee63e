import fp from 'fastify-plugin'
import cors from '@fastify/cors'
import { listSetting } from '../config.js'

/** The workshop frontend is often served from another origin and shows media straight from here. */
export default fp(async function corsPlugin (app) {
  const origins = listSetting(app.config.CORS_ORIGINS)
  if (origins.length === 0) return
  await app.register(cors, {
    origin: origins.includes('*') ? '*' : origins,
    methods: ['GET', 'HEAD', 'POST', 'PATCH', 'DELETE'],
    exposedHeaders: ['Content-Length', 'Content-Range', 'Accept-Ranges', 'ETag', 'Last-Modified', 'Content-Disposition', 'X-Request-Id', 'X-Run-Id', 'Retry-After'],
    maxAge: 600
  })
}, { name: 'cors', dependencies: ['config'] })
