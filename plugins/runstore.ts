import fp from 'fastify-plugin'
import type { Runstore } from '../runstore.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** every service, as the composition root (runstore.ts) built them */
    runstore: Runstore
  }
}

/** Hands the services buildApp built to the other plugins, and closes them with the app. */
export default fp<{ runstore: Runstore }>(async function runstorePlugin (app, { runstore }) {
  app.decorate('runstore', runstore)
  // onClose runs after the server stopped taking requests: what is left are runs whose client went away.
  app.addHook('onClose', async () => { await runstore.close() })
}, { name: 'runstore' })
