import fp from 'fastify-plugin'
import { timingSafeEqual, createHash } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import { AdminDisabledError, AdminUnauthorizedError } from '../services/errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** preHandler for admin routes: Authorization: Bearer <ADMIN_TOKEN> */
    requireAdmin: (request: FastifyRequest) => Promise<void>
  }
}

export default fp(async function adminPlugin (app) {
  const token = app.config.ADMIN_TOKEN
  // Compared as hashes so the comparison takes the same time whatever the lengths.
  const expected = token === undefined ? null : createHash('sha256').update(token).digest()
  app.decorate('requireAdmin', async (request: FastifyRequest) => {
    if (expected === null) throw new AdminDisabledError()
    const header = request.headers.authorization ?? ''
    const given = header.startsWith('Bearer ') ? header.slice('Bearer '.length) : ''
    if (!timingSafeEqual(createHash('sha256').update(given).digest(), expected)) throw new AdminUnauthorizedError()
  })
}, { name: 'admin', dependencies: ['config'] })
