import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import { AdminDisabledError, AdminUnauthorizedError } from '../services/errors.js'
import { bearerTokenCheck } from '../services/http/bearer-token.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** preHandler for admin routes: Authorization: Bearer <ADMIN_TOKEN> */
    requireAdmin: (request: FastifyRequest) => Promise<void>
  }
}

export default fp(async function adminPlugin (app) {
  const token = app.config.ADMIN_TOKEN
  const authorized = token === undefined ? null : bearerTokenCheck(token)
  app.decorate('requireAdmin', async (request: FastifyRequest) => {
    if (authorized === null) throw new AdminDisabledError()
    if (!authorized(request.headers.authorization)) throw new AdminUnauthorizedError()
  })
}, { name: 'admin', dependencies: ['config'] })
